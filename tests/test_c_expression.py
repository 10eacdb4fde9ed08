"""C expressions over the kernel's types, evaluated by drgn on the live machine (print/ptype)."""

from __future__ import annotations

import pytest
from machine_util import booted_system

pytest.importorskip("drgn")

from klpemu.debug.c_expression import ExpressionError, evaluate, format_value, type_of  # noqa: E402
from klpemu.machine.drgn_program import drgn_program  # noqa: E402


@pytest.fixture(scope="module")
def system():
    return booted_system()


@pytest.fixture(scope="module")
def prog(system):
    return drgn_program(system.machine)


def show(prog, text: str, **variables: int) -> str:
    return format_value(evaluate(prog, text, variables))


def test_arithmetic_follows_c(prog):
    assert show(prog, "1 + 2 * 3") == "(int)7"
    assert show(prog, "(1 + 2) * 3") == "(int)9"
    assert show(prog, "~0UL") == "(unsigned long)18446744073709551615"
    assert show(prog, "(unsigned char)0x1ff") == "(unsigned char)255"
    assert show(prog, "0x10 == 16 && !0") == "(int)1"
    assert show(prog, "7 % 4 << 2 | 1") == "(int)13"
    assert show(prog, "'a'") == "(char)97"
    assert show(prog, "$rip + 1", rip=0x41) == "(unsigned long)66"


def test_globals_members_and_pointers(system, prog):
    ops_list_end = system.machine.image.addr("ftrace_list_end")
    assert show(prog, "ftrace_ops_list") == f"(struct ftrace_ops *)ftrace_list_end+0x0 = {ops_list_end:#x}"
    assert show(prog, "ftrace_ops_list->next") == "(struct ftrace_ops *)0x0"
    assert show(prog, "(*ftrace_ops_list).flags") == show(prog, "ftrace_list_end.flags")
    assert show(prog, "task_table[2].comm") == '(char [16])"init"'
    assert show(prog, "((struct task_struct *)&task_table[2])->pid") == show(prog, "task_table[2].pid")
    assert show(prog, "sizeof(struct klp_patch)") == f"(unsigned long){prog.type('struct klp_patch').size}"
    first = show(prog, "*ftrace_ops_list")
    assert first.startswith("(struct ftrace_ops){\n\t.func = (ftrace_func_t)ftrace_stub+0x0")


def test_a_patch_is_visible_as_it_goes_live():
    """drgn reads memory live: a patch enabled after the Program was made is there, typed."""
    from klpemu.kernel.livepatch.builder import KlpBuilder

    system = booted_system()
    prog = drgn_program(system.machine)
    assert show(prog, "klp_transition_patch") == "(struct klp_patch *)0x0"
    lp = system.kernel.livepatch
    b = KlpBuilder(lp)
    patch = b.patch("p1", [b.object(None, [b.func("cmdline_proc_show", "version_proc_show")])])
    lp.enable(patch)
    assert show(prog, f"((struct klp_patch *){int(patch):#x})->enabled") == "(bool)1"
    obj_name = evaluate(prog, f"((struct klp_patch *){int(patch):#x})->mod")
    assert obj_name.type_.type_name() == "struct module *"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nosuch", 'No symbol "nosuch" in current context.'),
        ("task_table[0].nosuch", "There is no member named nosuch in struct task_struct."),
        ("task_table[1].pid->x", "The -> operator needs a pointer to a struct, not pid_t."),
        ("*ftrace_ops_list->next", "Cannot access memory at address 0x0"),
        ("*nr_tasks", "Attempt to take contents of a non-pointer value."),
        ("1 / 0", "Division by zero"),
        ("1 +", "An expression is needed."),
        ("1 2", "A syntax error in expression, near `2'."),
        ("1 @ 2", "Invalid character '@' in expression."),
        ("(struct nosuch *)0", "No type named struct nosuch *."),
        ("$nosuch", "No register or variable named $nosuch."),
    ],
)
def test_bad_expressions_read_as_gdbs(prog, text, message):
    with pytest.raises(ExpressionError) as e:
        evaluate(prog, text)
    assert str(e.value) == message


def test_ptype_takes_a_type_or_an_expression(prog):
    assert str(type_of(prog, "task_table[0].comm")) == "char [16]"
    text = str(type_of(prog, "struct klp_func"))
    assert text.startswith("struct klp_func {\n\tconst char *old_name;")
    assert str(type_of(prog, "ftrace_ops_list->func")) == (
        "void (*)(unsigned long, unsigned long, struct ftrace_ops *, struct ftrace_regs *)"
    )


def test_a_loaded_modules_types_and_symbols_come_and_go_with_it():
    from klpemu.debug.kernel_program import KernelProgram
    from klpemu.machine.machine import shipped_image

    system = booted_system()
    kernel_program = KernelProgram(system)
    with pytest.raises(ExpressionError, match='No symbol "livepatch_cmdline_proc_show"'):
        evaluate(kernel_program.prog, "livepatch_cmdline_proc_show")
    mod = system.kernel.modules.load(shipped_image().parent / "modules" / "livepatch-sample.ko")
    new_func = mod.lookup("livepatch_cmdline_proc_show").addr
    text = show(kernel_program.prog, "livepatch_cmdline_proc_show")
    assert text == f"(int (struct seq_file *m, void *v)){new_func:#x}"
    assert show(kernel_program.prog, "patch.objs->funcs->old_name") == (
        show(kernel_program.prog, "objs[0].funcs[0].old_name")
    )
    assert show(kernel_program.prog, "*patch.objs->funcs->old_name") == "(const char)99"  # 'c'
    assert show(kernel_program.prog, "patch.mod") == f"(struct module *){int(mod.struct):#x}"


def test_an_unloaded_module_is_gone_from_the_program():
    from klpemu.debug.kernel_program import KernelProgram
    from klpemu.machine.machine import shipped_image

    system = booted_system()
    kernel_program = KernelProgram(system)
    system.kernel.modules.load(shipped_image().parent / "modules" / "hello.ko", "count=3")
    assert show(kernel_program.prog, "count") == "(int)3"
    system.kernel.modules.unload("hello")
    with pytest.raises(ExpressionError, match='No symbol "count"'):
        evaluate(kernel_program.prog, "count")
    system.kernel.modules.load(shipped_image().parent / "modules" / "hello.ko", "count=5")
    assert show(kernel_program.prog, "count") == "(int)5"
