"""The quality gate: the spec's Soda v4 ``columns``/``checks`` verified on the staged output."""
