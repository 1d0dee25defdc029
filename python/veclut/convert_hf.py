"""HF checkpoint -> GGUF: llama.cpp's own convert_hf_to_gguf (from the patched tree) maps the
architecture and unpacks ternary weights (BitNet's absmean rule, `quant_method: bitnet`
packing) into an F32 GGUF; the GGUF route then verifies and converts the ternary tensors."""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import ui
from .convert_gguf import convert as convert_gguf
from .errors import VeclutError
from .paths import source_tree

TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json")


def _check_checkpoint(src: Path) -> str:
    config = src / "config.json"
    if not config.is_file():
        raise VeclutError(f"{src} has no config.json; give an HF checkpoint directory or a GGUF file")
    try:
        architectures = json.loads(config.read_text()).get("architectures") or []
    except json.JSONDecodeError as err:
        raise VeclutError(f"{config} is not valid JSON ({err.msg} at line {err.lineno}); fix or re-download it") from None
    if not architectures:
        raise VeclutError(f"{config} names no architecture (the 'architectures' list); fix the checkpoint")
    if not any((src / name).is_file() for name in TOKENIZER_FILES):
        raise VeclutError(f"{src} has no tokenizer ({' or '.join(TOKENIZER_FILES)}); copy the tokenizer files next to the weights")
    if not any(src.glob("*.safetensors")) and not any(src.glob("*.bin")):
        raise VeclutError(f"{src} has no weights (*.safetensors); give a complete checkpoint")
    return architectures[0]


def _is_packed(src: Path) -> bool:
    """quant_method: bitnet checkpoints, which llama.cpp's converter can only unpack eagerly."""
    config = json.loads((src / "config.json").read_text())
    return (config.get("quantization_config") or {}).get("quant_method") == "bitnet"


def _converter() -> Path:
    script = source_tree() / "vendor/llama.cpp/convert_hf_to_gguf.py"
    if not script.is_file():
        raise VeclutError("the patched llama.cpp tree is missing; run `veclut build` first")
    try:
        import torch  # noqa: F401  (the converter needs it)
    except ImportError:
        raise VeclutError("converting an HF checkpoint needs PyTorch; install it with `pip install torch==2.13.0`") from None
    return script


def convert(src: Path, tmp_out: Path, target_name: str, ternarize: bool):
    architecture = _check_checkpoint(src)
    script = _converter()
    scratch = Path(tempfile.mkdtemp(prefix=".veclut-tmp-hf-", dir=tmp_out.parent))
    try:
        f32 = scratch / "model-f32.gguf"
        with ui.status(f"llama.cpp's convert_hf_to_gguf: {architecture} -> F32 GGUF"):
            # lazy evaluation fails on packed weights (torch 2.13: "not on the expected device meta")
            eager = ["--no-lazy"] if _is_packed(src) else []
            result = subprocess.run([sys.executable, str(script), str(src), "--outtype", "f32", "--outfile", str(f32), *eager],
                                    capture_output=True, text=True)
        if result.returncode != 0:
            lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
            reason = next((l for l in reversed(lines) if "Error" in l or "not supported" in l), lines[-1] if lines else "no output")
            if "not supported" in reason:
                raise VeclutError(f"llama.cpp's converter does not support the architecture {architecture}; "
                                  "convert a supported family (BitNet, Llama, Falcon3, ...)")
            raise VeclutError(f"llama.cpp's converter failed on {src} ({reason.strip()})")
        return convert_gguf(f32, tmp_out, target_name, ternarize)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
