"""An import-linter contract that lists what a package MAY import (`lint-imports`, make test).

import-linter's own contracts say what must not be imported; an allow list also catches what
nobody thought to forbid (a web framework in the science code, a new dependency in a layer
that should not have it). The standard library is always allowed.

    [[tool.importlinter.contracts]]
    type = "allow_list"
    source_modules = ["beamdesk.xrf"]
    allowed_modules = ["beamdesk.errors", "numpy", "scipy"]

Every module inside ``source_modules`` may import its own package, the root package (``beamdesk``
holds only the version) and anything in or under ``allowed_modules``; any other direct import
breaks the contract, named with its line.
"""

from __future__ import annotations

import sys

from grimp import ImportGraph
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck

STANDARD_LIBRARY = frozenset(sys.stdlib_module_names) | {"__future__"}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


class AllowListContract(Contract):
    type_name = "allow_list"

    source_modules = fields.ListField(subfield=fields.StringField())
    allowed_modules = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        sources: list[str] = list(self.source_modules)  # type: ignore[call-overload]
        allowed: list[str] = list(self.allowed_modules)  # type: ignore[call-overload]
        offences: list[str] = []
        for source in sources:
            if source not in graph.modules:
                raise ValueError(f"{source} is not a module of the project")
            for importer in sorted(m for m in graph.modules if _within(m, source)):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    if (
                        imported.split(".")[0] in STANDARD_LIBRARY
                        or imported == importer.split(".")[0]
                        or _within(imported, source)
                        or any(_within(imported, a) for a in allowed)
                    ):
                        continue
                    details = graph.get_import_details(importer=importer, imported=imported)
                    lines = ", ".join(str(d["line_number"]) for d in details)
                    offences.append(f"{importer} (l. {lines}) imports {imported}")
        return ContractCheck(kept=not offences, metadata={"offences": offences})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for offence in check.metadata["offences"]:
            output.print_error(f"- {offence}", bold=False)
        output.new_line()
