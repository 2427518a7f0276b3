"""What API clients build on: the merged OpenAPI document and the SDK generated from it."""
