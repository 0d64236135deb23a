"""EventBridge "Utterance Transcribed" → sentiment (Comprehend or offline), rolling, alerts."""

from callstream import wiring
from callstream.analytics import sentiment
from callstream.edge import event_function

lambda_handler = event_function(wiring.sentiment_services, sentiment.handle)
