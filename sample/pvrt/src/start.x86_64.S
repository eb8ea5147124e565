/*
 * start.x86_64.S: entry point of a 64-bit Xen PV guest built on pvrt.
 *
 * Xen enters at _start in 64-bit long mode, with paging on, the kernel image
 * and the bootstrap region mapped at VIRT_BASE, interrupts (event delivery)
 * masked, and %rsi pointing at the start_info page. We set up a stack and
 * call rts_start(start_info) in C; it never returns.
 *
 * The Xen ELF notes below go into the .note.Xen section, which kernel.lds
 * places in a PT_NOTE segment where Xen's and libxl's ELF loaders read them.
 */

#ifndef GUEST_OS
#define GUEST_OS "HaLVM"
#endif
#ifndef GUEST_VERSION
#define GUEST_VERSION "2.4"
#endif

#define XEN_ELFNOTE_ENTRY          1
#define XEN_ELFNOTE_HYPERCALL_PAGE 2
#define XEN_ELFNOTE_VIRT_BASE      3
#define XEN_ELFNOTE_PADDR_OFFSET   4
#define XEN_ELFNOTE_XEN_VERSION    5
#define XEN_ELFNOTE_GUEST_OS       6
#define XEN_ELFNOTE_GUEST_VERSION  7
#define XEN_ELFNOTE_LOADER         8

#define STACK_SIZE (64 * 1024)

/* One ELF note named "Xen": header, name, then a 4-byte aligned
 * descriptor that is a NUL-terminated string or a 64-bit value. (gas strips
 * the quotes of a string macro argument, hence "\value" below.) */
.macro xen_note_begin type:req
	.pushsection .note.Xen, "a", @note
	.balign 4
	.long 4                 /* namesz: "Xen\0" */
	.long 852f - 851f       /* descsz */
	.long \type
	.asciz "Xen"
	.balign 4
851:
.endm
.macro xen_note_end
852:	.balign 4
	.popsection
.endm
.macro xen_note_str type:req, value:req
	xen_note_begin \type
	.asciz "\value"
	xen_note_end
.endm
.macro xen_note_quad type:req, value:req
	xen_note_begin \type
	.quad \value
	xen_note_end
.endm

	xen_note_str  XEN_ELFNOTE_GUEST_OS,       GUEST_OS
	xen_note_str  XEN_ELFNOTE_GUEST_VERSION,  GUEST_VERSION
	xen_note_str  XEN_ELFNOTE_XEN_VERSION,    "xen-3.0"
	xen_note_str  XEN_ELFNOTE_LOADER,         "generic"
	xen_note_quad XEN_ELFNOTE_VIRT_BASE,      0
	xen_note_quad XEN_ELFNOTE_PADDR_OFFSET,   0
	xen_note_quad XEN_ELFNOTE_ENTRY,          _start
	xen_note_quad XEN_ELFNOTE_HYPERCALL_PAGE, hypercall_page

	.section .text.start, "ax", @progbits
	.code64
	.globl _start
	.type _start, @function
_start:
	cld
	movq $stack_top, %rsp
	andq $-16, %rsp
	xorl %ebp, %ebp
	movq %rsi, %rdi            /* rts_start(start_info_t *si) */
	call rts_start
	/* rts_start shuts the domain down and does not return; if it ever
	 * did, spin: hlt is privileged in a PV guest. */
1:	pause
	jmp 1b
	.size _start, . - _start

/* Xen writes one 32-byte hypercall stub per hypercall number into this
 * page when it builds the domain: hypercall n is "call hypercall_page+n*32". */
	.balign 4096
	.globl hypercall_page
	.type hypercall_page, @object
hypercall_page:
	.fill 4096, 1, 0
	.size hypercall_page, 4096

	.section .bss.stack, "aw", @nobits
	.balign 16
	.globl stack_bottom
stack_bottom:
	.skip STACK_SIZE
	.globl stack_top
stack_top:

	.section .note.GNU-stack, "", @progbits
