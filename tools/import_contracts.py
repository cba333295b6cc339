"""A custom import-linter contract: each app has one public face.

Another app may import an app's `services` and `selectors` (and their submodules), its
`models` (for foreign keys and choices), and the modules named in `also_public`; nothing
else of it. `lint-imports` (in `make lint`) checks it with the layer contract, both set in
pyproject.toml.
"""

from __future__ import annotations

import grimp
from importlinter import Contract, ContractCheck, fields, output

PUBLIC = ("services", "selectors", "models")


class PublicFaceContract(Contract):
    type_name = "public_face"

    apps = fields.ListField(subfield=fields.StringField())
    also_public = fields.ListField(subfield=fields.StringField(), required=False)

    def _public(self, module: str, app: str) -> bool:
        if module == app or module in (self.also_public or []):  # type: ignore[operator]
            return True
        return any(
            module == f"{app}.{name}" or module.startswith(f"{app}.{name}.") for name in PUBLIC
        )

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        apps: list[str] = list(self.apps)  # type: ignore[call-overload]
        illegal = []
        for app in apps:
            for module in sorted(graph.find_descendants(app) | {app}):
                for importer in sorted(graph.find_modules_that_directly_import(module)):
                    importer_app = importer.split(".")[0]
                    if importer_app == app or importer_app not in apps:
                        continue
                    if not self._public(module, app):
                        details = graph.get_import_details(importer=importer, imported=module)
                        lines = sorted({detail["line_number"] for detail in details})
                        illegal.append((importer, module, lines))
        return ContractCheck(kept=not illegal, metadata={"illegal": illegal})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for importer, imported, lines in check.metadata["illegal"]:
            where = ", ".join(map(str, lines))
            output.print_error(f"- {importer} -> {imported} (l.{where}): not a public module")
        output.new_line()
        output.print(
            "Call the app's services or selectors instead (or add the read or write there)."
        )
