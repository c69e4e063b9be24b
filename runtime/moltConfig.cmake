# find_package(molt) for apps: defines the imported target molt::molt.
get_filename_component(_molt_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET molt::molt)
  add_library(molt::molt SHARED IMPORTED)
  find_library(_molt_lib molt PATHS "${_molt_prefix}/lib" "${_molt_prefix}/lib64"
               "${_molt_prefix}/${CMAKE_LIBRARY_ARCHITECTURE}" NO_DEFAULT_PATH
               PATH_SUFFIXES ${CMAKE_LIBRARY_ARCHITECTURE})
  if(NOT _molt_lib)
    set(molt_FOUND FALSE)
    set(molt_NOT_FOUND_MESSAGE "libmolt not found under ${_molt_prefix}")
    return()
  endif()
  set_target_properties(molt::molt PROPERTIES IMPORTED_LOCATION "${_molt_lib}"
                        INTERFACE_INCLUDE_DIRECTORIES "${_molt_prefix}/include")
endif()
set(molt_FOUND TRUE)
