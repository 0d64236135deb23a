#!/usr/bin/env bash
# The first things to check on a real account with LiveTranscription=aws (docs/transcription.md).
# Usage: docs/transcribe_first_checks.sh STACK_NAME [HOURS]   (aws CLI v2, the stack's region)
# Make one call through the stack first; this reads what the stream servers logged and counted.
set -euo pipefail
stack=${1:?usage: $0 STACK_NAME [HOURS]}
hours=${2:-1}
since=$(( $(date +%s) - hours * 3600 ))
group=$(aws cloudformation describe-stack-resource --stack-name "$stack" \
  --logical-resource-id StreamServerLogs --query StackResourceDetail.PhysicalResourceId --output text)

echo "1. Sessions refused (credentials, signature, a bad request) or given up, last ${hours} h:"
aws logs filter-log-events --log-group-name "$group" --start-time $((since * 1000)) \
  --filter-pattern '?"Transcribe refused" ?"Transcribe quota reached" ?"given up"' \
  --query 'events[].message' --output text | head -20

echo "2. Sessions that ended mid-call and were replayed:"
aws logs filter-log-events --log-group-name "$group" --start-time $((since * 1000)) \
  --filter-pattern '"ended mid-call"' --query 'length(events)' --output text

echo "3. Tracks sent per utterance because of the quota (RecognitionRefused, sum):"
aws cloudwatch get-metric-statistics --namespace callstream --metric-name RecognitionRefused \
  --start-time "$(date -u -d "@$since" +%Y-%m-%dT%H:%M:%SZ)" --end-time "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --period $((hours * 3600)) --statistics Sum --dimensions Name=service,Value=stream_server \
  --query 'Datapoints[].Sum' --output text

echo "4. The live lines' consumer reads through its fan-out consumer (state ACTIVE, IteratorAge):"
function=$(aws cloudformation describe-stack-resource --stack-name "$stack" \
  --logical-resource-id TranscribeUtteranceFunction --query StackResourceDetail.PhysicalResourceId --output text)
aws lambda list-event-source-mappings --function-name "$function" \
  --query 'EventSourceMappings[].[EventSourceArn,State]' --output text
aws cloudwatch get-metric-statistics --namespace AWS/Lambda --metric-name IteratorAge \
  --start-time "$(date -u -d "@$since" +%Y-%m-%dT%H:%M:%SZ)" --end-time "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --period 60 --statistics Maximum --dimensions Name=FunctionName,Value="$function" \
  --query 'sort_by(Datapoints,&Timestamp)[-5:].Maximum' --output text

cat <<'TODO'
5. By hand: in the console, how far a line's partials trail the caller's words, and when its
   final comes after the caller stops (bench/RESULTS.md has the embedded stack's figures).
6. A day later, Cost Explorer's Transcribe line for the test calls: a two-track call is one
   stereo session (channel identification), billed once for its length (bench.cost assumes so);
   and in the task's log, results of both channels (ch_0 and ch_1) came.
7. The quota: with the default 25 streams a region, the 26th two-track call at once is refused a
   session; RecognitionRefused counts its two tracks and its utterances go per utterance.
TODO
