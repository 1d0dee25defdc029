"""The peer runtime in `veclut bench --peer`: its pin, the hash check, the missing-peer report, the
parsing of its programs' output and the veclut/peer ratios. Nothing here builds the peer: its
programs are replaced by small scripts that print what the real ones print."""

import dataclasses
import hashlib
import io
import json
import stat
import tarfile

import local_index
import pytest

from veclut import bench, bench_peer, cpuinfo, peer, upstream
from veclut.bench_report import markdown, plots
from veclut.cli import main
from veclut.config import load_peer
from veclut.errors import VeclutError

CFG = {"threads": 2, "reps": 2, "prompt": 32, "gen": 8, "parallel": [1, 4], "parallel_prompt": 16, "parallel_gen": 4,
       "token_embedding_type": "q4_k", "output_type": "q6_k"}
SUITE = {"tiny": {"name": "tiny", "model": {"hidden": 256}}}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VECLUT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def ik():
    return load_peer("ik_llama")


def test_the_pin_names_the_package_and_its_tree(ik):
    assert ik.pin.package == "ik-llama-cpp-python" and ik.pin.version == "0.1.5"
    assert ik.pin.requirement == "ik-llama-cpp-python==0.1.5"
    assert ik.pin.sdist == "ik_llama_cpp_python-0.1.5.tar.gz" and len(ik.pin.sha256) == 64
    assert ik.pin.llama_cpp_dir == "vendor/ik_llama.cpp" and ik.pin.llama_cpp_commit.startswith("55d3c05b")
    assert ik.pin.config.endswith("configs/peers/ik_llama.yaml")
    assert set(ik.targets) == {"llama-bench", "llama-quantize", "llama-batched-bench"}
    assert ik.cmake["GGML_NATIVE"] == "ON" and ik.cmake["CMAKE_BUILD_TYPE"] == "Release"
    assert set(ik.types) == {"IQ2_BN_R4", "IQ2_BN", "IQ1_BN"}
    assert ik.compare == {"I2_V": ("IQ2_BN_R4", "IQ2_BN"), "I1_V": ("IQ1_BN",)}
    assert "-fa" in ik.batched_bench_args and ik.batched_bench_output == "table"


def test_unknown_peer_is_one_sentence():
    with pytest.raises(VeclutError, match="unknown peer runtime 'nope'; known peers: ik_llama"):
        load_peer("nope")


@pytest.mark.parametrize("args, words", [(["gemm", "--peer", "nope"], "unknown peer runtime 'nope'"),
                                         (["e2e", "--peer", "nope"], "unknown peer runtime 'nope'")])
def test_bench_refuses_a_peer_it_cannot_measure_before_measuring(args, words, capsys):
    assert main(["bench", *args]) == 1
    assert words in capsys.readouterr().err


def _sdist(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
    return buffer.getvalue()


SDIST = _sdist({"ik-1.0/vendor/ik_llama.cpp/CMakeLists.txt": b"project(ik)\n",
                "ik-1.0/vendor/ik_llama.cpp/common/build-info.cpp.in": b"int LLAMA_BUILD_NUMBER = @BUILD_NUMBER@;\n"})


def _downloader(payload: bytes):
    def download(pin, dest):
        (dest / pin.sdist).write_bytes(payload)
    return download


def _with_fake_sdist(ik):
    pin = dataclasses.replace(ik.pin, sdist="ik-1.0.tar.gz", sha256=hashlib.sha256(SDIST).hexdigest())
    return dataclasses.replace(ik, pin=pin)


def test_a_wrong_file_is_refused_before_anything_in_it_is_read(ik, cache):
    with pytest.raises(VeclutError) as err:
        peer.ensure_source(ik, _downloader(SDIST))
    message = str(err.value)
    assert ik.pin.sha256 in message and "configs/peers/ik_llama.yaml" in message and "deleted" in message
    assert [p for p in cache.rglob("*") if p.is_file()] == [], "nothing of the bad download is kept or unpacked"


def test_pip_refuses_a_peer_sdist_of_another_hash_before_running_anything_from_it(ik, cache, tmp_path, monkeypatch):
    """The peer's pin goes through the same hash-checked `pip download` as ours (fails without it:
    pip runs the archive's build backend, which leaves the marker)."""
    marker = tmp_path / "backend-ran"
    local_index.publish(tmp_path / "index", "ik", "1.0", marker, monkeypatch)
    pin = dataclasses.replace(ik.pin, package="ik", version="1.0", sdist="ik-1.0.tar.gz")  # ik's real sha256
    with pytest.raises(VeclutError) as err:
        peer.ensure_source(dataclasses.replace(ik, pin=pin))
    assert not marker.exists(), "pip ran the build backend of an archive whose hash is not pinned"
    assert ik.pin.sha256 in str(err.value) and "configs/peers/ik_llama.yaml" in str(err.value)
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_the_working_tree_gets_the_files_the_sdist_lacks(ik, cache):
    fake = _with_fake_sdist(ik)
    tree = peer.ensure_source(fake, _downloader(SDIST))
    assert (tree / "CMakeLists.txt").read_text() == "project(ik)\n"
    script = (tree / "common/cmake/build-info-gen-cpp.cmake").read_text()
    assert "build-info.cpp.in" in script and "LLAMA_COMMIT" in script
    pristine = upstream.unpacked_path(fake.pin) / "vendor/ik_llama.cpp"
    assert not (pristine / "common/cmake").exists(), "the unpacked sdist stays as downloaded"
    assert peer.ensure_source(fake, _downloader(b"never used")) == tree, "a second run copies nothing"


def _fail_download(pin, dest):
    raise VeclutError(f"pip could not download {pin.requirement} (no network)")


@pytest.mark.parametrize("downloader, words", [(_fail_download, "pip could not download"),
                                               (_downloader(SDIST), "sha256")])
def test_a_peer_that_cannot_be_fetched_is_reported_missing(ik, downloader, words):
    rows, info = bench_peer.run(ik, SUITE, ["I2_V"], CFG, 1,
                                build=lambda p: peer.ensure_built(p, downloader=downloader))
    assert rows == [] and info["status"] == "missing" and words in info["reason"]
    assert info["package"] == "ik-llama-cpp-python" and info["version"] == "0.1.5"


def _script(path, text):
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


BATCHED_TABLE = """
main: n_kv_max = 144, n_batch = 2048, n_ubatch = 512, flash_attn = 0, is_pp_shared = 0

|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |
|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|
|    16 |      4 |    1 |     20 |    0.100 |   160.00 |    0.200 |    20.00 |    0.300 |    66.67 |
|    16 |      4 |    4 |     80 |    0.400 |   160.00 |    0.400 |    40.00 |    0.800 |   100.00 |
"""


@pytest.fixture
def fake_peer_programs(tmp_path, monkeypatch):
    """A bin/ directory whose llama-quantize, llama-bench and llama-batched-bench print what ik's do;
    IQ1_BN cannot be made, as if ik's quantizer refused it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _script(bin_dir / "llama-quantize",
            '[ "$2" = q4_K ] && [ "$4" = q6_K ] || { echo "invalid tensor type $2" >&2; exit 1; }\n'  # ggml's spelling
            'for last; do :; done\n[ "$last" = IQ1_BN ] && { echo "invalid ftype IQ1_BN" >&2; exit 1; }\n'
            'cp "$5" "$6"\n')
    samples = [{"n_prompt": 32, "n_gen": 0, "samples_ts": [100.0, 110.0]},
               {"n_prompt": 0, "n_gen": 8, "samples_ts": [20.0, 22.0]}]
    _script(bin_dir / "llama-bench", f"echo 'build: 0 (ik)'\ncat <<'EOF'\n{json.dumps(samples)}\nEOF\n")
    _script(bin_dir / "llama-batched-bench", f"echo log > llama.log\ncat >&2 <<'EOF'\n{BATCHED_TABLE}\nEOF\n")
    base = tmp_path / "models" / "base-f16.gguf"
    base.parent.mkdir()
    base.write_bytes(b"GGUF")
    monkeypatch.setattr(bench_peer, "ensure_base", lambda suite, m, seed: base)
    return bin_dir


def test_a_fake_peer_run_gives_labelled_rows_and_names_the_type_it_lacks(ik, fake_peer_programs, tmp_path, monkeypatch):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    rows, info = bench_peer.run(ik, SUITE, ["I2_V", "I1_V"], CFG, 1, build=lambda p: fake_peer_programs)
    got = {(r["type"], r["test"]): r["median"] for r in rows}
    assert got[("ik:IQ2_BN_R4", "pp32")] == 105.0 and got[("ik:IQ2_BN", "tg8")] == 21.0
    assert got[("ik:IQ2_BN", "parallel4 tg")] == 40.0 and got[("ik:IQ2_BN_R4", "parallel1 tg")] == 20.0
    assert not any(t.startswith("ik:IQ1_BN") for t, _ in got)
    assert info["status"] == "measured" and "invalid ftype IQ1_BN" in info["failed"]["tiny ik:IQ1_BN"]
    models = sorted(p.name for p in fake_peer_programs.parent.glob("models/*.gguf"))
    assert models == ["base-f16.gguf", "ik-iq2_bn-q4_k-q6_k.gguf", "ik-iq2_bn_r4-q4_k-q6_k.gguf"]
    assert not (tmp_path / "cwd/llama.log").exists(), "the peer's files land beside its build"
    assert (peer.peer_root(ik) / "run/llama.log").is_file()


def _asserts(program):
    # a crash: the assertion, then the debugger's backtrace, whose last line says nothing
    _script(program, "echo 'iqk_quantize.cpp:503: GGML_ASSERT(k >= 8*QK_IQ1BN) failed' >&2\n"
                     "echo '30\t../sysdeps/unix/sysv/linux/wait4.c: No such file or directory.' >&2\nexit 134\n")


def _cannot_start(program):
    program.chmod(0o644)


@pytest.mark.parametrize("breaks, words", [(_asserts, "(iqk_quantize.cpp:503: GGML_ASSERT(k >= 8*QK_IQ1BN) failed)"),
                                           (_cannot_start, "Permission denied")])
def test_a_peer_whose_every_type_fails_is_missing(ik, fake_peer_programs, breaks, words):
    breaks(fake_peer_programs / "llama-bench")
    rows, info = bench_peer.run(ik, SUITE, ["I2_V", "I1_V"], CFG, 1, build=lambda p: fake_peer_programs)
    assert rows == [] and info["status"] == "missing" and words in info["reason"]


def test_only_the_peer_types_compared_with_the_chosen_types_run(ik):
    assert bench_peer.peer_types(ik, ["I1_V"]) == ["IQ1_BN"]
    assert bench_peer.peer_types(ik, ["I2_V", "TQ2_0"]) == ["IQ2_BN_R4", "IQ2_BN"]
    assert bench_peer.peer_types(ik, ["TQ2_0"]) == list(ik.types)


def test_batched_bench_table_and_jsonl_give_the_same_speeds():
    jsonl = "\n".join(json.dumps({"pl": b, "speed_tg": s, "speed_pp": 1.0}) for b, s in ((1, 20.0), (4, 40.0)))
    assert bench._table_speeds(BATCHED_TABLE) == bench._jsonl_speeds(jsonl) == [(1, 20.0), (4, 40.0)]


def _row(type_name, median, test="pp512"):
    return {"suite": "s", "type": type_name, "test": test, "threads": 2, "unit": "t/s", "median": median,
            "min": median, "max": median}


def test_ratios_are_veclut_over_each_compared_peer_type(ik):
    rows = [_row("I2_V", 300), _row("ik:IQ2_BN_R4", 200), _row("ik:IQ2_BN", 150), _row("I1_V", 100),
            _row("ik:IQ1_BN", 400), _row("TQ2_0", 50), _row("I2_V", 30, "tg128"), _row("ik:IQ2_BN", 60, "tg128")]
    got = {(r["type"], r["baseline"], r["test"]): r["speedup"] for r in bench_peer.peer_ratios(rows, ik)}
    assert got == {("I2_V", "ik:IQ2_BN_R4", "pp512"): 1.5, ("I2_V", "ik:IQ2_BN", "pp512"): 2.0,
                   ("I1_V", "ik:IQ1_BN", "pp512"): 0.25, ("I2_V", "ik:IQ2_BN", "tg128"): 0.5}


def _report(peers: dict, rows: list[dict], peer_ratios: list[dict]) -> dict:
    machine = {"cpu": "CPU X", "cpu_vendor": "AuthenticAMD", "cpu_family": "25", "cpu_model": "17", "cpu_stepping": "1",
               "cores": 2, "features": ["AVX2"], "flags": ["avx2", "fma"], "threads": {"e2e": 2}, "profile": "native",
               "kernels": "avx2", "veclut_commit": "abc", "llama_cpp_commit": "0c1e", "date": "today"}
    return {"machine": machine, "command": "veclut bench e2e --peer ik_llama", "e2e": rows, "e2e_ratios": [],
            "peers": peers, "peer_ratios": peer_ratios}


def test_the_report_marks_a_missing_peer_with_its_reason(ik, tmp_path):
    info = {**bench_peer.describe(ik), "status": "missing", "reason": "building peer ik_llama failed; the full log is /x.log"}
    report = _report({"ik_llama": info}, [_row("I2_V", 300)], [])
    text = markdown(report, [])
    assert "**ik_llama: missing** — building peer ik_llama failed; the full log is /x.log" in text
    assert "AuthenticAMD, family 25, model 17" in text and "threads: end to end 2" in text and "avx2 fma" in text
    bench.write_report(tmp_path / "out", report)
    assert json.loads((tmp_path / "out/report.json").read_text())["peers"]["ik_llama"]["status"] == "missing"


def test_the_report_shows_peer_rows_ratios_and_a_ratio_plot(ik, tmp_path):
    rows = [_row("I2_V", 300), _row("ik:IQ2_BN_R4", 200)]
    info = {**bench_peer.describe(ik), "status": "measured", "failed": {"s ik:IQ1_BN": "no"}}
    report = _report({"ik_llama": info}, rows, bench_peer.peer_ratios(rows, ik))
    text = markdown(report, [])
    assert "| pp512 | I2_V / ik:IQ2_BN_R4 | **1.50** |" in text
    assert "ik-llama-cpp-python 0.1.5" in text and "-fa 0" in text and "s ik:IQ1_BN missing: no" in text
    assert "peer-s.png" in plots(tmp_path, report)


def test_cpu_identity_is_read_from_cpuinfo(monkeypatch):
    text = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\nmodel name\t: Xeon\nstepping\t: 8\n"
    monkeypatch.setattr(cpuinfo, "_cpuinfo", lambda: text)
    assert cpuinfo.identity() == {"vendor": "GenuineIntel", "family": "6", "model": "143", "stepping": "8"}
    monkeypatch.setattr(cpuinfo, "_cpuinfo", lambda: "")
    assert cpuinfo.identity() == {"vendor": "?", "family": "?", "model": "?", "stepping": "?"}
