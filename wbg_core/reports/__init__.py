"""Report writers, apart from the engine: documents generated from the results the engine saves."""
