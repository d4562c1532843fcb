"""Who may call, and how often: creator-token authentication, rate limits, client addresses.

Both doors spend a request's hits here before any hashing: REST in dependencies, GraphQL in
its rate-limit extension (`api.gql.rate_limits`).
"""
