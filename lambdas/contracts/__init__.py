"""Data contracts shared by every writer and reader of an item: the program's components, the
Lambda functions (shipped in the dependencies layer as the top-level package `contracts`), the
tools and the installer web app (which reads the JSON files directly)."""
