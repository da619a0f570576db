#!/bin/sh
# Regenerate the AutoGen gateway's protobuf/gRPC Python code from its .proto files.
# Usage: scripts/gen_autogen_protos.sh PYTHON   (a Python with grpcio-tools installed; `make protos` makes one)
set -eu
PY=${1:-python3}
DIR=agentnet/gateway/autogen/protos
"$PY" -m grpc_tools.protoc -I "$DIR" --python_out="$DIR" --pyi_out="$DIR" --grpc_python_out="$DIR" \
    "$DIR/cloudevent.proto" "$DIR/agent_worker.proto"
# protoc writes top-level imports (`import cloudevent_pb2`); the package needs relative ones.
sed -i 's/^import cloudevent_pb2 as/from . import cloudevent_pb2 as/; s/^import agent_worker_pb2 as/from . import agent_worker_pb2 as/' \
    "$DIR/agent_worker_pb2.py" "$DIR/agent_worker_pb2_grpc.py"
rm -f "$DIR/cloudevent_pb2_grpc.py"
echo "regenerated $DIR/*_pb2*.py"
