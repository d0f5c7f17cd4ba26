# bpf_object(name src hdrs...): compile one BPF C file with clang and generate its libbpf
# skeleton with bpftool (style.md §14 rule 12, after libbpf-bootstrap's FindBpfObject).
# Produces:
#   ${CMAKE_CURRENT_BINARY_DIR}/<name>.bpf.o     the BPF ELF object (also usable by `ip link`)
#   ${CMAKE_CURRENT_BINARY_DIR}/<name>.skel.h    skeleton, API prefix <name>_bpf__
#   <name>_skel                                   INTERFACE target: include dir + libbpf
# Uapi headers only (no vmlinux.h), so the object builds without the host's BTF.
find_program(BPF_CLANG clang REQUIRED)
find_program(BPFTOOL bpftool PATHS /usr/sbin /sbin REQUIRED)
pkg_check_modules(LIBBPF REQUIRED IMPORTED_TARGET libbpf>=1.1)

set(BPF_ARCH_INCLUDE /usr/include/${CMAKE_LIBRARY_ARCHITECTURE})
if(NOT CMAKE_LIBRARY_ARCHITECTURE)
	set(BPF_ARCH_INCLUDE /usr/include/x86_64-linux-gnu)
endif()

function(bpf_object name src)
	set(hdrs ${ARGN})
	set(obj ${CMAKE_CURRENT_BINARY_DIR}/${name}.bpf.o)
	set(skel ${CMAKE_CURRENT_BINARY_DIR}/${name}.skel.h)
	add_custom_command(OUTPUT ${obj}
		COMMAND ${BPF_CLANG} -target bpf -g -O2 -mcpu=v3 -Wall -Werror
			-I${BPF_ARCH_INCLUDE} -I${CMAKE_CURRENT_SOURCE_DIR}
			-I${CMAKE_SOURCE_DIR}/engine/stun
			-c ${CMAKE_CURRENT_SOURCE_DIR}/${src} -o ${obj}
		DEPENDS ${src} ${hdrs}
		COMMENT "BPF ${name}.bpf.o"
		VERBATIM)
	add_custom_command(OUTPUT ${skel}
		COMMAND sh -c "${BPFTOOL} gen skeleton ${obj} name ${name}_bpf > ${skel}.tmp && mv ${skel}.tmp ${skel}"
		DEPENDS ${obj}
		COMMENT "BPF skeleton ${name}.skel.h"
		VERBATIM)
	add_custom_target(${name}_skel_gen DEPENDS ${obj} ${skel})
	add_library(${name}_skel INTERFACE)
	add_dependencies(${name}_skel ${name}_skel_gen)
	target_include_directories(${name}_skel INTERFACE ${CMAKE_CURRENT_BINARY_DIR})
	target_link_libraries(${name}_skel INTERFACE PkgConfig::LIBBPF)
endfunction()
