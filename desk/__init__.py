"""The application: the runtime that owns background tasks, the market/news/sentiment desks, live feeds,
status, the news relay, cluster (backplane, leader election) and the metrics collector."""
