"""The consumers: recordings, transcripts, sentiment, call summaries, and the sweeper."""
