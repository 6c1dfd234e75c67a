"""Everything beyond the original's files: the networks' formats, training, completion, faces,
the SavedModel export and the web server (docs/development.md has the tree).

Imports flow one way: utils, runtime -> ops -> networks, distribute -> model (the DCGAN) -> training,
completion, encoder, faces, export -> serving -> the scripts. Nothing here exits the process or
prints an error: it raises (utils.UserError and its kinds), and each script's main turns that
into one line and an exit code.
"""
