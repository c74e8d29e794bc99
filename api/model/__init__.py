"""What the API's three processes share: the read model's schema and queries, job records,
time bounds, reissued commands and the API's errors."""
