"""The application: the runtime that owns background tasks, the market/news/sentiment desks, live feeds,
status, the news relay, the cluster (its roles over the bus's Redis backend) and the metrics collector."""
