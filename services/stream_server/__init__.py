"""The Fargate stream server: Vobiz WebSockets in, Kinesis out, talking back."""
