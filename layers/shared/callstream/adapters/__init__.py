"""I/O adapters: boto3-backed AWS sinks and stores, the Vobiz REST client, local backends."""
