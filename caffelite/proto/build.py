"""Compile proto/caffe.proto into caffe_pb2.py with grpcio-tools' bundled protoc.

``python -m caffelite.proto.build`` regenerates the checked-in
caffelite/proto/caffe_pb2.py; tests call :func:`generate` to check it is not stale.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto"
PROTO_FILE = PROTO_DIR / "caffe.proto"


def generate(out_dir):
    """Write caffe_pb2.py for proto/caffe.proto into ``out_dir``; return its path."""
    if not PROTO_FILE.is_file():
        raise FileNotFoundError(
            f"{PROTO_FILE} not found: regenerating caffe_pb2.py needs the caffelite source tree")
    from grpc_tools import protoc  # build-time dependency only

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rc = protoc.main(["grpc_tools.protoc", f"-I{PROTO_DIR}", f"--python_out={out_dir}", str(PROTO_FILE)])
    if rc != 0:
        raise RuntimeError(f"protoc failed (exit code {rc}) compiling {PROTO_FILE}")
    return out_dir / "caffe_pb2.py"


if __name__ == "__main__":
    print(generate(Path(__file__).resolve().parent))
