"""A `revealSecret` field stands alone in its operation.

A reveal deletes the secret as it returns it, and cannot be undone. In a document with other
fields, one of them failing as an error (at capacity, database down, quota) turns the whole
answer into `data: null`, and a secret revealed by an earlier field would be deleted with its
text never returned. So an operation that reveals holds nothing else: refused at validation,
before any field runs, like the document limits.
"""

from collections.abc import Iterator

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
)

REVEAL_FIELD = "revealSecret"
MESSAGE = (
    "revealSecret must be the only field of its operation: a reveal cannot be undone, and "
    "another field's failure would hide its answer."
)


class OneRevealPerOperation(ValidationRule):
    """Refuses an operation that has `revealSecret` beside any other field."""

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: object) -> None:
        """Report an error if the operation reveals and also does anything else."""
        names = [
            field.name.value
            for field in self._top_level_fields(node.selection_set, set())
            if not field.name.value.startswith("__")
        ]
        if REVEAL_FIELD in names and len(names) > 1:
            self.report_error(GraphQLError(MESSAGE, node))

    def _top_level_fields(
        self, selection_set: SelectionSetNode, seen: set[str]
    ) -> Iterator[FieldNode]:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                yield from self._top_level_fields(selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                seen.add(selection.name.value)
                fragment = self.context.get_fragment(selection.name.value)
                if fragment is not None:
                    yield from self._top_level_fields(fragment.selection_set, seen)
