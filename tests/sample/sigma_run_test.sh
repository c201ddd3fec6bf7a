#!/usr/bin/env bash
# sigma-run end to end: greedy output is deterministic across runs and
# thread counts; usage and file errors give the documented exit codes.
# Usage: sigma_run_test.sh PATH/TO/sigma-run
set -u
run=$1
fail() { echo "FAIL: $*"; exit 1; }

# argument errors need no model
"$run" --help >/dev/null || fail "--help"
"$run" -p x -n notanumber 2>/dev/null; [ $? -eq 2 ] || fail "bad -n should exit 2"
"$run" --bogus 2>/dev/null; [ $? -eq 2 ] || fail "unknown option should exit 2"
"$run" 2>/dev/null; [ $? -eq 2 ] || fail "no prompt should exit 2"
"$run" -m /nonexistent/model.gguf -p x 2>/dev/null; [ $? -eq 1 ] || fail "missing model should exit 1"
err=$("$run" -m /nonexistent/model.gguf -p x 2>&1 >/dev/null)
[ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || fail "error is not one line: $err"
bad=$(mktemp); printf 'GGUF garbage' >"$bad"
"$run" -m "$bad" -p x 2>/dev/null; [ $? -eq 1 ] || fail "malformed model should exit 1"
rm -f "$bad"

if [ -z "${SIGMA_TEST_MODEL:-}" ]; then
  echo "SIGMA_TEST_MODEL not set: skipping the model runs"; exit 77
fi
m=$SIGMA_TEST_MODEL
"$run" -m "$m" -p x -f /nonexistent/prompt.txt 2>/dev/null; [ $? -eq 2 ] || fail "-p with -f should exit 2"
"$run" -m "$m" -f /nonexistent/prompt.txt 2>/dev/null; [ $? -eq 1 ] || fail "missing prompt file should exit 1"

p="The capital of France is"
a=$("$run" -m "$m" -p "$p" --temp 0 -n 16 -t 1 2>/dev/null) || fail "run 1"
b=$("$run" -m "$m" -p "$p" --temp 0 -n 16 -t 1 2>/dev/null) || fail "run 2"
c=$("$run" -m "$m" -p "$p" --temp 0 -n 16 -t 2 2>/dev/null) || fail "run 3"
[ -n "$a" ] || fail "no output"
[ "$a" = "$b" ] || fail "not deterministic across runs: '$a' vs '$b'"
[ "$a" = "$c" ] || fail "-t 1 and -t 2 differ: '$a' vs '$c'"
echo "greedy: $a"
# timings go to stderr only
t=$("$run" -m "$m" -p "$p" --temp 0 -n 4 2>&1 >/dev/null)
echo "$t" | grep -q "t/s" || fail "no timings on stderr: $t"
# a prompt file gives the same as -p
pf=$(mktemp); printf '%s' "$p" >"$pf"
d=$("$run" -m "$m" -f "$pf" --temp 0 -n 16 -t 1 2>/dev/null) || fail "run -f"
[ "$a" = "$d" ] || fail "-f differs from -p"
rm -f "$pf"
# sampling with a seed is reproducible
s1=$("$run" -m "$m" -p "$p" --temp 0.9 --seed 7 -n 12 2>/dev/null) || fail "seed run 1"
s2=$("$run" -m "$m" -p "$p" --temp 0.9 --seed 7 -n 12 2>/dev/null) || fail "seed run 2"
[ "$s1" = "$s2" ] || fail "same seed, different text"
# chat: answer mentions Paris; the empty line ends the chat
out=$(printf 'What is the capital of France?\n\n' | "$run" -m "$m" --chat --temp 0 -n 48 2>/dev/null) || fail "chat"
echo "chat: $out"
echo "$out" | grep -q "Paris" || fail "chat answer without Paris"
# multi-line input with a trailing backslash is one message
out2=$(printf 'What is the capital\\\nof France?\n' | "$run" -m "$m" --chat --temp 0 -n 48 2>/dev/null) || fail "chat 2"
echo "$out2" | grep -q "Paris" || fail "multi-line chat answer without Paris"
# Ctrl-C in one-shot mode: stops generation, timings still printed, exit 130
"$run" -m "$m" -p "Once upon a time" -n 100000 -c 2048 >/dev/null 2>"$pf.err" &
pid=$!
sleep 4
kill -INT $pid
wait $pid; rc=$?
[ $rc -eq 130 ] || fail "SIGINT in one-shot mode: exit $rc, want 130"
grep -q "interrupted" "$pf.err" || fail "no 'interrupted' on stderr"
# Ctrl-C in chat mode stops the answer, not the program; the next question
# is still answered
fifo=$(mktemp -u); mkfifo "$fifo"
"$run" -m "$m" --chat --temp 0 -n 400 -c 2048 <"$fifo" >"$pf.out" 2>"$pf.err" &
pid=$!
exec 3>"$fifo"
printf 'Write a very long story about a dragon.\n' >&3
sleep 6
kill -INT $pid
sleep 1
printf 'What is the capital of France?\n' >&3
exec 3>&-
wait $pid; rc=$?
rm -f "$fifo"
[ $rc -eq 0 ] || fail "chat after Ctrl-C: exit $rc"
grep -q "\[interrupted\]" "$pf.err" || fail "chat: no [interrupted] on stderr"
grep -q "Paris" "$pf.out" || fail "chat: no answer after Ctrl-C"
rm -f "$pf.err" "$pf.out"
echo "ok"
