"""The application layer: the market, news and sentiment desks, the runtime that drives their tasks, status,
live feeds, the news relay and the cluster's roles over the bus's Redis backend."""
