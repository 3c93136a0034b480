"""The data layer: official data files read with one-line errors (`files`), their pinned
download (`download`, `sources.json`), hub datasets (`hub`) and `bench data stats` (`stats`).

May import: the spec layer and below. Task modules (`bench.tasks`) sit on this layer too.
"""
