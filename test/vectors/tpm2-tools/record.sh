#!/usr/bin/env bash
# Records what tpm2-tools 5.4 prints for `tpm2_getcap <category>` (every category `tpm2_getcap -l`
# lists) and for a set of `tpm2_pcrread` selections, from a fresh swtpm 0.7.1
# (`--flags not-need-init,startup-clear`), into this directory. See README.md.
#
# usage: bash test/vectors/tpm2-tools/record.sh [PORT]      (PORT and PORT+1 must be free; default 23321)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${1:-23321}"
state="$(mktemp -d)"
swtpm socket --tpm2 --tpmstate "dir=$state" \
  --server "type=tcp,port=$port,bindaddr=127.0.0.1" --ctrl "type=tcp,port=$((port + 1)),bindaddr=127.0.0.1" \
  --flags not-need-init,startup-clear &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$state"; }
trap cleanup EXIT
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$((port + 1))") 2>/dev/null && break; sleep 0.1; done
export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$port"

{
  echo "tpm2-tools: $(tpm2_getcap --version)"
  echo "swtpm: $(swtpm --version | head -1)"
} > "$here/versions.txt"

tpm2_getcap -l > "$here/getcap-list.yaml"
for cap in $(sed -n 's/^- //p' "$here/getcap-list.yaml"); do
  tpm2_getcap "$cap" > "$here/getcap-$cap.yaml"
done

# file name: the argument with ':' -> '_', ',' -> '-', '+' -> '__'; "default" = no argument
tpm2_pcrread > "$here/pcrread-default.yaml"
for sel in sha256:0,1 sha1:0+sha256:16 sha256:all sha256:0,0 sha256:3,1 sha256 sha1:0,1+sha3_256:0; do
  name="$(printf %s "$sel" | sed -e 's/+/__/g' -e 's/:/_/g' -e 's/,/-/g')"
  tpm2_pcrread "$sel" > "$here/pcrread-$name.yaml" 2> /dev/null
done
