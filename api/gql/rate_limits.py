"""Rate limits on the GraphQL door: a document's limited fields are charged before any runs.

Each mutation field, and each query field that reads stored data, names its bucket in its
metadata (`rate_limited(Bucket.CREATE)`); `operation_buckets` reads them from the schema,
and building the schema fails if a mutation has none, so a new mutation cannot slip past
the limits.

A document with `createSecret` is charged as its creator (`api.access.authentication`): in token
mode one without a valid creator token is answered `UNAUTHENTICATED`, with HTTP 401.
"""

from collections.abc import AsyncIterator, Mapping
from functools import lru_cache
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    get_operation_ast,
)
from starlette import status
from starlette.requests import Request
from strawberry.extensions import SchemaExtension
from strawberry.types.base import StrawberryObjectDefinition

from api.access.authentication import spend_as_creator
from api.access.rate_limits import TOO_MANY_REQUESTS, Bucket
from api.domain.errors import ServiceUnavailable, Unauthenticated
from api.gql.error_responses import set_status, unauthenticated_error, unavailable_error

_BUCKET_KEY = "rate_limit_bucket"
RATE_LIMITED_CODE = "RATE_LIMITED"


def rate_limited(bucket: Bucket) -> dict[str, Any]:
    """Field metadata that charges each run of the mutation to `bucket`."""
    return {_BUCKET_KEY: bucket}


class MutationWithoutBucket(TypeError):
    """A mutation field was declared without `rate_limited(…)` metadata."""


OperationBuckets = Mapping[OperationType, Mapping[str, Bucket]]
"""The bucket of each limited root field, by operation type and GraphQL name."""


def _field_buckets(
    schema: strawberry.Schema, type_name: str, *, required: bool
) -> dict[str, Bucket]:
    root = schema.get_type_by_name(type_name)
    if not isinstance(root, StrawberryObjectDefinition):
        return {}
    buckets: dict[str, Bucket] = {}
    for field in root.fields:
        name = schema.config.name_converter.get_graphql_name(field)
        metadata: Mapping[str, Any] = field.metadata or {}
        bucket = metadata.get(_BUCKET_KEY)
        if isinstance(bucket, Bucket):
            buckets[name] = bucket
        elif required:
            raise MutationWithoutBucket(f"mutation {name} has no rate-limit bucket")
    return buckets


@lru_cache(maxsize=8)
def operation_buckets(schema: strawberry.Schema) -> OperationBuckets:
    """Return the bucket of every mutation field and of every limited query field."""
    return {
        OperationType.QUERY: _field_buckets(schema, "Query", required=False),
        OperationType.MUTATION: _field_buckets(schema, "Mutation", required=True),
    }


def operation_costs(
    document: DocumentNode, operation_name: str | None, buckets: OperationBuckets
) -> dict[Bucket, int]:
    """Count the limited root fields an operation will run, per bucket.

    Each response key (alias) counts once, through fragments too. `@skip` and `@include`
    are not evaluated, so a skipped field still counts: an upper bound, never an undercount.
    """
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation not in buckets:
        return {}
    field_buckets = buckets[operation.operation]
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    response_keys: dict[str, str] = {}
    visited: set[str] = set()

    def collect(selection_set: SelectionSetNode) -> None:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                key = (selection.alias or selection.name).value
                response_keys.setdefault(key, selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                collect(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in visited and name in fragments:
                    visited.add(name)
                    collect(fragments[name].selection_set)

    collect(operation.selection_set)
    costs: dict[Bucket, int] = {}
    for field in response_keys.values():
        if field in field_buckets:
            bucket = field_buckets[field]
            costs[bucket] = costs.get(bucket, 0) + 1
    return costs


class GraphQLRateLimit(SchemaExtension):
    """Charges a document's limited fields to the client's buckets before any of them runs.

    Over the limit, nothing runs: the answer is HTTP 429 with `Retry-After`, and a GraphQL
    body whose only error has `extensions.code` `RATE_LIMITED` and `retryAfterSeconds`.
    A document that creates is charged as its creator, who is kept in `context.creator`.
    """

    async def on_execute(self) -> AsyncIterator[None]:
        """Spend the document's hits, or replace its execution with the refusal."""
        context = self.execution_context
        request = getattr(context.context, "request", None)
        document = context.graphql_document
        if isinstance(request, Request) and document is not None:
            buckets = operation_buckets(context.schema)
            costs = operation_costs(document, context.operation_name, buckets)
            refusal = await self._refusal(request, costs)
            if refusal is not None:
                context.result = ExecutionResult(data=None, errors=[refusal])
        yield

    async def _refusal(self, request: Request, costs: dict[Bucket, int]) -> GraphQLError | None:
        context = self.execution_context.context
        try:
            context.creator, verdict = await spend_as_creator(
                request, context.db, context.settings, costs
            )
        except Unauthenticated as error:
            return unauthenticated_error(context, error)
        except ServiceUnavailable as error:
            set_status(context, 503, {"Retry-After": str(error.retry_after_seconds)})
            return unavailable_error(error)
        if verdict.allowed:
            return None
        set_status(
            context,
            status.HTTP_429_TOO_MANY_REQUESTS,
            {"Retry-After": str(verdict.retry_after)},
        )
        extensions = {"code": RATE_LIMITED_CODE, "retryAfterSeconds": verdict.retry_after}
        return GraphQLError(TOO_MANY_REQUESTS, extensions=extensions)
