-- luacheck configuration.  Run from the source root: ctest's lint:luacheck
-- runs `luacheck lua spec examples`; bench/ is configured too (`luacheck bench`).
std = "lua54"

-- Lines as the code has them: code up to 132 columns; Python sources and
-- scripts embedded in Lua strings are not wrapped at all.
max_line_length = 132
max_string_line_length = false
max_comment_line_length = 132

exclude_files = {"build*/**", ".luarocks-test/**"}

-- busted's globals (describe, it, assert.*, spy, ...) in the specs.
files["spec/**/*.lua"] = {std = "+busted"}
