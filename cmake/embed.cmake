# Writes OUT as a C file defining `const char NAME[]` with IN's bytes.
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}" "const char ${NAME}[] = {${bytes} 0x00};\n")
