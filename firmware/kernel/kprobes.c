// SPDX-License-Identifier: GPL-2.0
/*
 * Kprobes' machine-code half (kernel/kprobes.c): the probe table lookup, the
 * handlers of aggregate probes, the kretprobe entry and return handlers, and
 * the register/unregister calls a module makes, which the machine serves.
 */
#define pr_fmt(fmt) "kprobes: " fmt

#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/kprobes.h>
#include <linux/delay.h>
#include <linux/errno.h>
#include <klpemu/hypercall.h>

struct kprobe *kprobe_table[KPROBE_TABLE_SIZE];
struct kprobe_ctlblk kprobe_ctlblk[NR_CPUS];
/* Instances of unregistered kretprobes, handed back for the machine to free once unused. */
struct llist_head kretprobe_orphans;
static raw_spinlock_t kretprobe_orphans_lock;

notrace struct kprobe *get_kprobe(void *addr)
{
	struct kprobe *p;

	for (p = READ_ONCE(kprobe_table[kprobe_hash((unsigned long)addr)]); p; p = READ_ONCE(p->hlist_next))
		if (p->addr == addr)
			return p;
	return NULL;
}
NOKPROBE_SYMBOL(get_kprobe);

notrace struct kprobe_ctlblk *get_kprobe_ctlblk(void)
{
	return &kprobe_ctlblk[smp_processor_id()];
}
NOKPROBE_SYMBOL(get_kprobe_ctlblk);

notrace struct kprobe *kprobe_running(void)
{
	return get_kprobe_ctlblk()->current_kprobe;
}
NOKPROBE_SYMBOL(kprobe_running);

/* The handlers of the probe that stands for several at one address. */
static notrace int aggr_pre_handler(struct kprobe *p, struct pt_regs *regs)
{
	struct kprobe_ctlblk *kcb = get_kprobe_ctlblk();
	struct kprobe *kp;

	list_for_each_entry(kp, &p->list, list) {
		if (kp->pre_handler && !kprobe_disabled(kp)) {
			kcb->current_kprobe = kp;
			if (kp->pre_handler(kp, regs))
				return 1;
		}
		kcb->current_kprobe = p;
	}
	return 0;
}
NOKPROBE_SYMBOL(aggr_pre_handler);

static notrace void aggr_post_handler(struct kprobe *p, struct pt_regs *regs, unsigned long flags)
{
	struct kprobe_ctlblk *kcb = get_kprobe_ctlblk();
	struct kprobe *kp;

	list_for_each_entry(kp, &p->list, list) {
		if (kp->post_handler && !kprobe_disabled(kp)) {
			kcb->current_kprobe = kp;
			kp->post_handler(kp, regs, flags);
			kcb->current_kprobe = p;
		}
	}
}
NOKPROBE_SYMBOL(aggr_post_handler);

notrace void kprobes_inc_nmissed_count(struct kprobe *p)
{
	struct kprobe *kp;

	if (p->pre_handler != aggr_pre_handler) {
		p->nmissed++;
		return;
	}
	list_for_each_entry(kp, &p->list, list)
		kp->nmissed++;
}
NOKPROBE_SYMBOL(kprobes_inc_nmissed_count);

/*
 * A CPU running kprobes' code outside any probe (a kretprobe's return): a
 * probe hit meanwhile counts as missed, nothing preempts it, and the machine
 * sees the CPU as inside kprobes when it waits before freeing.
 */
static struct kprobe kprobe_busy = {
	.addr = (void *)get_kprobe,
};

notrace void kprobe_busy_begin(void)
{
	struct kprobe_ctlblk *kcb;

	preempt_disable();
	kcb = get_kprobe_ctlblk();
	kcb->current_kprobe = &kprobe_busy;
	kcb->kprobe_status = KPROBE_HIT_ACTIVE;
}
NOKPROBE_SYMBOL(kprobe_busy_begin);

notrace void kprobe_busy_end(void)
{
	get_kprobe_ctlblk()->current_kprobe = NULL;
	preempt_enable_no_resched();
}
NOKPROBE_SYMBOL(kprobe_busy_end);

/* --- kretprobes ------------------------------------------------------------------------------ */

static notrace struct kretprobe_instance *kretprobe_get_instance(struct kretprobe *rp)
{
	unsigned long flags = raw_spin_lock_irqsave(&rp->lock);
	struct llist_node *node = rp->freelist.first;

	if (node)
		rp->freelist.first = node->next;
	raw_spin_unlock_irqrestore(&rp->lock, flags);
	return node ? container_of(node, struct kretprobe_instance, llist) : NULL;
}
NOKPROBE_SYMBOL(kretprobe_get_instance);

static notrace void recycle_rp_inst(struct kretprobe_instance *ri)
{
	struct kretprobe *rp = get_kretprobe(ri);
	raw_spinlock_t *lock = rp ? &rp->lock : &kretprobe_orphans_lock;
	struct llist_head *head = rp ? &rp->freelist : &kretprobe_orphans;
	unsigned long flags = raw_spin_lock_irqsave(lock);

	ri->llist.next = head->first;
	head->first = &ri->llist;
	raw_spin_unlock_irqrestore(lock, flags);
}
NOKPROBE_SYMBOL(recycle_rp_inst);

/*
 * From finish_task_switch, for a task that died: the calls it never returned
 * from keep instances on its list; they go back to their kretprobes.
 */
notrace void kprobe_flush_task(struct task_struct *tk)
{
	struct llist_node *node, *next;

	kprobe_busy_begin();
	node = tk->kretprobe_instances.first;
	tk->kretprobe_instances.first = NULL;
	for (; node; node = next) {
		next = node->next;
		recycle_rp_inst(container_of(node, struct kretprobe_instance, llist));
	}
	kprobe_busy_end();
}
NOKPROBE_SYMBOL(kprobe_flush_task);

/*
 * The pre handler of every kretprobe: take a free instance (none free: the call
 * is missed), remember the caller's return address and where it was, and make
 * the call return into __kretprobe_trampoline instead.
 */
notrace int pre_handler_kretprobe(struct kprobe *p, struct pt_regs *regs)
{
	struct kretprobe *rp = container_of(p, struct kretprobe, kp);
	unsigned long *sara = (unsigned long *)regs->sp;
	struct kretprobe_instance *ri = kretprobe_get_instance(rp);

	if (!ri) {
		rp->nmissed++;
		return 0;
	}
	if (rp->entry_handler && rp->entry_handler(ri, regs)) {
		recycle_rp_inst(ri);
		return 0;
	}
	ri->ret_addr = (kprobe_opcode_t *)*sara;
	ri->fp = sara;
	*sara = (unsigned long)__kretprobe_trampoline;
	ri->llist.next = current->kretprobe_instances.first;
	current->kretprobe_instances.first = &ri->llist;
	return 0;
}
NOKPROBE_SYMBOL(pre_handler_kretprobe);

/*
 * Called from __kretprobe_trampoline once a probed call returned into it.
 * Every instance of this frame (several kretprobes may watch one function) is
 * on top of the task's list; the first that saved a real return address (not
 * the trampoline's, which a probed function called from a probed one saves)
 * says where to go. The handlers run with regs->ip already there, as if the
 * call had returned, then the instances are unlinked and recycled.
 */
static notrace unsigned long __kretprobe_trampoline_handler(struct pt_regs *regs, void *frame_pointer)
{
	struct task_struct *task = current;
	struct kprobe_ctlblk *kcb = get_kprobe_ctlblk();
	struct llist_node *first, *node;
	kprobe_opcode_t *correct_ret_addr = NULL;
	struct kretprobe_instance *ri;
	struct kretprobe *rp;

	for (node = task->kretprobe_instances.first; node; node = node->next) {
		ri = container_of(node, struct kretprobe_instance, llist);
		if (ri->ret_addr != (kprobe_opcode_t *)__kretprobe_trampoline) {
			correct_ret_addr = ri->ret_addr;
			break;
		}
	}
	if (!correct_ret_addr) {
		pr_err("kretprobe: Return address not found, not execute handler. Maybe there is a bug in the kernel.\n");
		BUG_ON(1);
	}

	regs->ip = (unsigned long)correct_ret_addr;
	for (first = task->kretprobe_instances.first; first; first = first->next) {
		ri = container_of(first, struct kretprobe_instance, llist);
		if (WARN_ON_ONCE(ri->fp != frame_pointer))
			break;
		rp = get_kretprobe(ri);
		if (rp && rp->handler) {
			struct kprobe *prev = kcb->current_kprobe;

			kcb->current_kprobe = &rp->kp;
			ri->ret_addr = correct_ret_addr;
			rp->handler(ri, regs);
			kcb->current_kprobe = prev;
		}
		if (first == node)
			break;
	}

	first = task->kretprobe_instances.first;
	task->kretprobe_instances.first = node->next;
	node->next = NULL;
	while (first) {
		ri = container_of(first, struct kretprobe_instance, llist);
		first = first->next;
		recycle_rp_inst(ri);
	}
	return (unsigned long)correct_ret_addr;
}
NOKPROBE_SYMBOL(__kretprobe_trampoline_handler);

notrace unsigned long kretprobe_trampoline_handler(struct pt_regs *regs)
{
	unsigned long ret;

	kprobe_busy_begin();
	ret = __kretprobe_trampoline_handler(regs, (void *)(regs->sp - sizeof(unsigned long)));
	kprobe_busy_end();
	return ret;
}
NOKPROBE_SYMBOL(kretprobe_trampoline_handler);

/* For the critical cases only; the machine prints it, since it has the symbols for %pS. */
notrace void dump_kprobe(struct kprobe *kp)
{
	hypercall(HC_KPROBE_DUMP, (long)kp, 0, 0);
}
NOKPROBE_SYMBOL(dump_kprobe);

/* --- handlers that are Python ---------------------------------------------------------------- */

enum { KPROBE_HOST_PRE, KPROBE_HOST_POST, KPROBE_HOST_RET, KPROBE_HOST_ENTRY };

notrace int kprobe_host_pre_handler(struct kprobe *p, struct pt_regs *regs)
{
	return hypercall4(HC_KPROBE_CALLBACK, KPROBE_HOST_PRE, (long)p, (long)regs, 0);
}
NOKPROBE_SYMBOL(kprobe_host_pre_handler);

notrace void kprobe_host_post_handler(struct kprobe *p, struct pt_regs *regs, unsigned long flags)
{
	hypercall4(HC_KPROBE_CALLBACK, KPROBE_HOST_POST, (long)p, (long)regs, flags);
}
NOKPROBE_SYMBOL(kprobe_host_post_handler);

notrace int kretprobe_host_handler(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	return hypercall4(HC_KPROBE_CALLBACK, KPROBE_HOST_RET, (long)get_kretprobe(ri), (long)regs, (long)ri);
}
NOKPROBE_SYMBOL(kretprobe_host_handler);

notrace int kretprobe_host_entry_handler(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	return hypercall4(HC_KPROBE_CALLBACK, KPROBE_HOST_ENTRY, (long)get_kretprobe(ri), (long)regs, (long)ri);
}
NOKPROBE_SYMBOL(kretprobe_host_entry_handler);

/* --- the API, served by the machine ---------------------------------------------------------- */

int register_kprobe(struct kprobe *p)
{
	return hypercall(HC_KPROBE_REGISTER, (long)p, 0, 0);
}

/*
 * The machine disarms and unlinks at once, then answers -EAGAIN while another
 * CPU is still inside a probe: this sleeps and asks again, as synchronize_rcu
 * would wait, and the call that returns 0 has freed the slot and the rest.
 */
void unregister_kprobe(struct kprobe *p)
{
	while (hypercall(HC_KPROBE_UNREGISTER, (long)p, 0, 0) == -EAGAIN)
		msleep(1);
}

int register_kretprobe(struct kretprobe *rp)
{
	return hypercall(HC_KRETPROBE_REGISTER, (long)rp, 0, 0);
}

void unregister_kretprobe(struct kretprobe *rp)
{
	while (hypercall(HC_KRETPROBE_UNREGISTER, (long)rp, 0, 0) == -EAGAIN)
		msleep(1);
}

int enable_kprobe(struct kprobe *kp)
{
	return hypercall(HC_KPROBE_ENABLE, (long)kp, 1, 0);
}

int disable_kprobe(struct kprobe *kp)
{
	return hypercall(HC_KPROBE_ENABLE, (long)kp, 0, 0);
}

/* What modules may link against, as Linux exports it (at the end, so that no __LINE__ moves). */
EXPORT_SYMBOL_GPL(register_kprobe);
EXPORT_SYMBOL_GPL(unregister_kprobe);
EXPORT_SYMBOL_GPL(register_kretprobe);
EXPORT_SYMBOL_GPL(unregister_kretprobe);
