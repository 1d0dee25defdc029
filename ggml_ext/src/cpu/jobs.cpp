#include "jobs.h"

#include "ggml-impl.h"

#include <cstring>

namespace veclut {

const float * flat_row(const ggml_tensor * t, int64_t n) {
    const int64_t i1 = n % t->ne[1], i2 = (n / t->ne[1]) % t->ne[2], i3 = n / (t->ne[1] * t->ne[2]);
    return (const float *) ((const char *) t->data + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3]);
}

routing_size routing_size_of(const ggml_tensor * op) {
    const ggml_tensor * src1 = op->src[1];
    const int64_t src_rows = src1->ne[1] * src1->ne[2] * src1->ne[3];
    if (op->op == GGML_OP_MUL_MAT_ID) {
        const ggml_tensor * ids = op->src[2];
        return {src_rows, ids->ne[0] * ids->ne[1], op->src[0]->ne[2]};
    }
    return {src_rows, src_rows, 1};
}

int64_t route(const ggml_tensor * op, int64_t * src_index, float ** out, job * jobs, int64_t * count) {
    if (op->op == GGML_OP_MUL_MAT) {
        const int64_t n = routing_size_of(op).positions;
        for (int64_t p = 0; p < n; ++p) {
            src_index[p] = p;
            out[p] = const_cast<float *>(flat_row(op, p));
        }
        jobs[0] = {0, 0, n, 0};
        return 1;
    }
    // MUL_MAT_ID (ggml_mul_mat_id): token t's slot u uses expert ids[u, t], activation row
    // src1[:, u % ne11, t] and writes dst[:, u, t]
    const ggml_tensor * src1 = op->src[1];
    const ggml_tensor * ids  = op->src[2];
    const int64_t n_used = ids->ne[0], n_tokens = ids->ne[1], ne11 = src1->ne[1];
    const int64_t matrices = op->src[0]->ne[2], M = op->src[0]->ne[1];
    auto expert = [&](int64_t u, int64_t t) {
        const int32_t e = *(const int32_t *) ((const char *) ids->data + u * ids->nb[0] + t * ids->nb[1]);
        GGML_ASSERT(e >= 0 && e < matrices && "MUL_MAT_ID: expert id out of range");
        return (int64_t) e;
    };
    std::memset(count, 0, (matrices + 1) * sizeof(int64_t));
    for (int64_t t = 0; t < n_tokens; ++t) {
        for (int64_t u = 0; u < n_used; ++u) {
            count[expert(u, t) + 1]++;
        }
    }
    int64_t njobs = 0;
    for (int64_t e = 0; e < matrices; ++e) {  // count[e] becomes the next free position of expert e
        if (count[e + 1] > 0) {
            jobs[njobs++] = {e * M, count[e], count[e + 1], 0};
        }
        count[e + 1] += count[e];
    }
    for (int64_t t = 0; t < n_tokens; ++t) {
        for (int64_t u = 0; u < n_used; ++u) {
            const int64_t p = count[expert(u, t)]++;
            src_index[p] = (u % ne11) + t * ne11;
            out[p] = (float *) ((char *) op->data + u * op->nb[1] + t * op->nb[2]);
        }
    }
    return njobs;
}

}  // namespace veclut
