"""`harness init`: a team's repository set up to sign off on its unit with the installed harness.

The files come from the package (templates/ here, the shipped thresholds, unit spec and design document), so
a new repository starts from what this version of the harness reads. Nothing is written when any file would
be overwritten (unless forced): a repository is never left half set up.
"""

from harness.scaffold.init import GITIGNORE_FILE, InitError, Written, default_requirement, planned_files, scaffold

__all__ = ["GITIGNORE_FILE", "InitError", "Written", "default_requirement", "planned_files", "scaffold"]
