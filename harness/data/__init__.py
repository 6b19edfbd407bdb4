"""The unit's data: seeding (profiles, tables, migrations), vectors and their ground truth, the app role."""
