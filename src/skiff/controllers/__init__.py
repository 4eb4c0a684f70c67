"""The controllers ``skiff controller-manager`` runs: one module per controller.

Each module that contributes controllers exposes ``CONTROLLERS: list[ControllerSpec]``
(see skiff.controllers.manager); the manager discovers them with pkgutil.
"""
