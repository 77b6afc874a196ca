#!/usr/bin/env bash
# How a filesystem model does on what real programs ask: shell sessions run
# on the exact engine's mount with --record (each from an empty filesystem),
# then `llmfuse eval MODEL` on the recorded operations.  Prints eval's table
# (per operation, R/W, valid XML, latency) and keeps the recording.
# Needs root and /dev/fuse.
#
#   bench/engine_sessions.sh [-m MODEL] [-o RECORD.jsonl]
#     MODEL: models/fs.gguf
source "$(dirname "$0")/engine_common.bash"
record=
while getopts "m:o:" option; do
  case $option in
    m) model=$OPTARG ;;
    o) record=$OPTARG ;;
    *) exit 1 ;;
  esac
done
mnt=$work/mnt
make_mountpoint mnt
record=${record:-$work/sessions.jsonl}
: >"$record"

sessions=(
  'mkdir notes; echo hello >notes/a.txt; cat notes/a.txt; echo "second line" >>notes/a.txt
   ls -l notes; chmod 600 notes/a.txt; mv notes/a.txt notes/b.txt; ln -s b.txt notes/link
   cat notes/link; rm notes/b.txt; ls notes; readlink notes/link; cat notes/missing; rm notes/link; rmdir notes'
  'mkdir -p src/lib docs; printf "int main(void)\n{\n    return 0;\n}\n" >src/main.c
   echo "# Project" >docs/README.md; ls -l src docs; cat src/main.c; mv docs/README.md README.md
   ls -l; rmdir docs; ls'
  'echo "#!/bin/sh" >run.sh; echo "echo hi" >>run.sh; chmod 755 run.sh; ls -l run.sh
   truncate -s 0 run.sh; ls -l run.sh; echo exit >run.sh; cat run.sh; mv run.sh start.sh; ls'
  'mkdir logs; echo started >logs/app.log; echo stopped >>logs/app.log; cp logs/app.log logs/app.log.1
   : >logs/app.log; ls -l logs; cat logs/app.log.1; ln -s app.log.1 logs/latest; ls -l logs
   rm logs/app.log.1; ls logs'
  'mkdir -p a/b; touch a/b/empty; echo x >a/x; mv a/b c; ls a c; rmdir a 2>&1; rm a/x; rmdir a
   chmod 700 c; ls -ld c; rm c/empty; rmdir c; ls -la'
  'echo "port = 80" >server.conf; echo "host = web01" >>server.conf; cat server.conf
   mkdir backup; mv server.conf backup/; ls backup; echo "port = 8080" >server.conf
   cat server.conf backup/server.conf; rm -r backup; ls'
)
for session in "${sessions[@]}"; do
  serve "$mnt" "$work/engine.log" --engine=exact --record "$record"
  (cd "$mnt" && bash -c "$session" >/dev/null 2>&1) || true
  fusermount3 -u "$mnt"
  wait
done
echo "$(wc -l <"$record") operations recorded from ${#sessions[@]} shell sessions; model: $model"
"$llmfuse" eval "$model" "$record" --threads 2 ${MISMATCHES:+--mismatches "$MISMATCHES"}
