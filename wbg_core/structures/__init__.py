"""Structures for candidate formulas: EMD templates, substitution, CHGNet stability, CIF export, 3D scene.

Submodules import pymatgen, CHGNet and Crystal Toolkit lazily; importing this package is cheap.
"""
