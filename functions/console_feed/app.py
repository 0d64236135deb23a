"""EventBridge: every callstream event → the console's per-call timeline and calls list."""

from callstream import wiring
from callstream.console import feed
from callstream.edge import event_function

lambda_handler = event_function(wiring.feed_services, feed.record, whole_event=True)
