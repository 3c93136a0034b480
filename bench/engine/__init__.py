"""The engine: one cell, start to finish, on a model.

Owns the method/engine contract (`adapted`), model loading (`loading`), text to token ids
(`encoding`), the training loop (`training`), beam search (`generation`), arithmetic precision
(`precision`), parameter accounting (`params`), the cell's result as one value (`record`) and
`run_cell` (`cell`). Method folders (`bench.methods`) sit on this layer too.

May import: the spec, data and metrics layers and below. Never the store, the runner or the
measuring tools: a cell is a pure function of its spec, its data and its dependencies.
"""
