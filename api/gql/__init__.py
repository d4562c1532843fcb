"""The GraphQL transport: a Strawberry schema over the service layer.

Named `gql` so that nothing here can shadow the `graphql` (graphql-core) package.
"""
