"""Front-end packages served by the platform itself (SPEC §10: government intranets have no internet).

`npm ci` installs the packages of package-lock.json into node_modules at set-up time (make does it);
nothing is committed and nothing loads from a CDN at run time. Only the files named in
`VENDOR_FILES` are served, under `/console/static/vendor/<name>`: the rest of node_modules stays
private. A missing file stops the app at start-up with a message that says what to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huimin.config import Settings
from huimin.errors import ConfigurationError

__all__ = ["VENDOR_FILES", "VendorAssets"]

# public name -> path inside node_modules
VENDOR_FILES: dict[str, str] = {
    "echarts.min.js": "echarts/dist/echarts.min.js",
    "swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
}

# src/huimin/console/assets.py -> the project directory, where package.json and node_modules live
_PROJECT_DIR = Path(__file__).resolve().parents[3]


def _default_dir() -> Path:
    if (_PROJECT_DIR / "package.json").is_file():
        return _PROJECT_DIR / "node_modules"  # a checkout (an editable install): its node_modules
    return Path.cwd() / "node_modules"


@dataclass(frozen=True)
class VendorAssets:
    root: Path

    @classmethod
    def locate(cls, settings: Settings) -> VendorAssets:
        """The installed packages, checked: every file the console serves must be there."""
        root = (settings.assets_dir or _default_dir()).resolve()
        missing = [path for path in VENDOR_FILES.values() if not (root / path).is_file()]
        if missing:
            raise ConfigurationError(
                f"the console's front-end packages are not installed in {root} (missing {missing[0]}"
                f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}): run `npm ci` in the "
                "project directory (make does it), or point HUIMIN_ASSETS_DIR at an installed node_modules"
            )
        return cls(root)

    def path(self, name: str) -> Path | None:
        """The file behind a public name, or None for a name that is not served."""
        relative = VENDOR_FILES.get(name)
        return None if relative is None else self.root / relative
