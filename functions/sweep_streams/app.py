"""Every few minutes: end the live streams whose stream-server task no longer answers."""

from callstream import wiring
from callstream.analytics import sweeper
from callstream.edge import event_function

lambda_handler = event_function(
    wiring.sweeper_services, sweeper.handle, counts={"StreamsSwept": lambda r: len(r["swept"])}
)
