"""The later of "Recording Ready" and the last "Sentiment Scored" → summary, "Call Completed"."""

from callstream import wiring
from callstream.analytics import summary
from callstream.edge import event_function

lambda_handler = event_function(wiring.summary_services, summary.handle)
