"""UtteranceStream consumer: each utterance → text (Transcribe or offline) → DynamoDB + event."""

from callstream import wiring
from callstream.analytics import transcripts
from callstream.edge import located_batch_function

lambda_handler = located_batch_function(
    wiring.transcript_services,
    transcripts.handle,
    time_left=transcripts.check_time_left,
    passed_over=transcripts.superseded,
)
