"""AudioStream consumer: audio records → S3 segments; a stream's end → its WAV and sidecar."""

from callstream import wiring
from callstream.analytics import recording
from callstream.edge import batch_function

lambda_handler = batch_function(wiring.recording_services, recording.handle)
