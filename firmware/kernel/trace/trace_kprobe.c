// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe events' handlers (kernel/trace/trace_kprobe.c): a hit of an enabled
 * event's kprobe or kretprobe runs each argument's fetch program and writes
 * the event's record into the trace ring. The host made the probe and the
 * programs from the kprobe_events definition; nothing here calls it.
 */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/string.h>
#include <linux/errno.h>
#include <linux/trace_probe.h>

struct probe_nofault_range probe_nofault_ranges[PROBE_NOFAULT_RANGES];

/*
 * copy_from_kernel_nofault (user 0) or copy_from_user_nofault (user 1): 0, or
 * -EFAULT for memory nothing maps or of the other kind (the host listed both).
 */
static notrace int __probe_mem_read(void *dest, unsigned long src, unsigned long size, unsigned long user)
{
	int i;

	if (src + size < src)
		return -EFAULT;
	for (i = 0; i < PROBE_NOFAULT_RANGES && probe_nofault_ranges[i].end; i++) {
		struct probe_nofault_range *r = &probe_nofault_ranges[i];

		if (src >= r->start && src + size <= r->end && r->user == user) {
			memcpy(dest, (void *)src, size);
			return 0;
		}
	}
	return -EFAULT;
}
NOKPROBE_SYMBOL(__probe_mem_read);

static __always_inline int probe_mem_read(void *dest, unsigned long src, unsigned long size)
{
	return __probe_mem_read(dest, src, size, 0);
}

/* The string's length with its NUL, or -EFAULT. */
static notrace int fetch_store_strlen(unsigned long addr, unsigned long user)
{
	int len = 0;
	u8 c;

	do {
		if (__probe_mem_read(&c, addr + len, 1, user))
			return -EFAULT;
		len++;
	} while (c && len < MAX_STRING_SIZE);
	return len;
}
NOKPROBE_SYMBOL(fetch_store_strlen);

static __always_inline u32 make_data_loc(int len, int offs)
{
	return ((u32)len << 16) | (offs & 0xffff);
}

static notrace int fetch_store_string(unsigned long addr, u32 *dest, void *base, unsigned long user)
{
	int maxlen = *dest >> 16;
	char *d = (char *)base + (*dest & 0xffff);
	int len = 0;

	if (!maxlen)
		return -ENOMEM;
	while (len < maxlen) {
		if (__probe_mem_read(&d[len], addr + len, 1, user)) {
			*dest = make_data_loc(0, d - (char *)base);
			return -EFAULT;
		}
		if (!d[len++])
			break;
	}
	d[len - 1] = '\0';
	*dest = make_data_loc(len, d - (char *)base);
	return len;
}
NOKPROBE_SYMBOL(fetch_store_string);

static notrace unsigned long regs_get_kernel_argument(struct pt_regs *regs, unsigned int n)
{
	unsigned long val = 0;

	switch (n) {
	case 0: return regs->di;
	case 1: return regs->si;
	case 2: return regs->dx;
	case 3: return regs->cx;
	case 4: return regs->r8;
	case 5: return regs->r9;
	}
	/* past the sixth: on the stack, above the return address */
	probe_mem_read(&val, regs->sp + (n - 5) * sizeof(long), sizeof(long));
	return val;
}
NOKPROBE_SYMBOL(regs_get_kernel_argument);

static notrace void fetch_store_raw(unsigned long val, struct fetch_insn *code, void *dest)
{
	switch (code->size) {
	case 1: *(u8 *)dest = (u8)val; break;
	case 2: *(u16 *)dest = (u16)val; break;
	case 4: *(u32 *)dest = (u32)val; break;
	case 8: *(u64 *)dest = (u64)val; break;
	default: *(unsigned long *)dest = val;
	}
}
NOKPROBE_SYMBOL(fetch_store_raw);

static notrace void fetch_apply_bitfield(struct fetch_insn *code, void *buf)
{
	switch (code->basesize) {
	case 1: *(u8 *)buf = (u8)(*(u8 *)buf << code->lshift) >> code->rshift; break;
	case 2: *(u16 *)buf = (u16)(*(u16 *)buf << code->lshift) >> code->rshift; break;
	case 4: *(u32 *)buf = (u32)(*(u32 *)buf << code->lshift) >> code->rshift; break;
	case 8: *(u64 *)buf = (*(u64 *)buf << code->lshift) >> code->rshift; break;
	}
}
NOKPROBE_SYMBOL(fetch_apply_bitfield);

/*
 * One argument's program (process_fetch_insn and its bottom half): the value,
 * its dereferences, the store (dest NULL: a string's length only), the
 * bitfield, the array loop. Returns the bytes of dynamic data used, or < 0.
 */
static notrace int process_fetch_insn(struct fetch_insn *code, struct pt_regs *regs, void *edata, void *dest,
				      void *base)
{
	struct fetch_insn *s3;
	unsigned long val = 0, lval;
	int total = 0, ret = 0, i = 0;
	u32 loc = 0;

	if (code->op == FETCH_NOP_SYMBOL)
		code++;
	switch (code->op) {
	case FETCH_OP_REG: val = ((unsigned long *)regs)[code->param]; break;
	case FETCH_OP_STACK: probe_mem_read(&val, regs->sp + code->param * sizeof(long), sizeof(long)); break;
	case FETCH_OP_STACKP: val = regs->sp; break;
	case FETCH_OP_RETVAL: val = regs->ax; break;
	case FETCH_OP_ARG: val = regs_get_kernel_argument(regs, code->param); break;
	case FETCH_OP_IMM: case FETCH_OP_DATA: val = code->immediate; break;
	case FETCH_OP_EDATA: val = *(unsigned long *)((char *)edata + code->offset); break;
	case FETCH_OP_COMM: val = (unsigned long)current->comm; break;
	default: return -EILSEQ;
	}
	code++;
	lval = val;
stage2:
	while (code->op == FETCH_OP_DEREF || code->op == FETCH_OP_UDEREF) {
		lval = val;
		ret = __probe_mem_read(&val, val + code->offset, sizeof(val), code->op == FETCH_OP_UDEREF);
		if (ret)
			return ret;
		code++;
	}
	s3 = code;
stage3:
	if (!dest) {
		if (code->op != FETCH_OP_ST_STRING && code->op != FETCH_OP_ST_USTRING)
			return -EILSEQ;
		ret = fetch_store_strlen(val + code->offset, code->op == FETCH_OP_ST_USTRING);
		code++;
		goto array;
	}
	switch (code->op) {
	case FETCH_OP_ST_RAW: fetch_store_raw(val, code, dest); break;
	case FETCH_OP_ST_MEM: case FETCH_OP_ST_UMEM:
		if (__probe_mem_read(dest, val + code->offset, code->size, code->op == FETCH_OP_ST_UMEM))
			memset(dest, 0, code->size);
		break;
	case FETCH_OP_ST_STRING: case FETCH_OP_ST_USTRING:
		loc = *(u32 *)dest;
		ret = fetch_store_string(val + code->offset, dest, base, code->op == FETCH_OP_ST_USTRING);
		break;
	default: return -EILSEQ;
	}
	code++;
	if (code->op == FETCH_OP_MOD_BF) {
		fetch_apply_bitfield(code, dest);
		code++;
	}
array:
	if (code->op == FETCH_OP_LP_ARRAY) {
		if (ret < 0)
			ret = 0;
		total += ret;
		if (++i < code->param) {
			code = s3;
			if (s3->op != FETCH_OP_ST_STRING && s3->op != FETCH_OP_ST_USTRING) {
				dest += s3->size;
				val += s3->size;
				goto stage3;
			}
			code--;
			val = lval + sizeof(char *);
			if (dest) {
				dest += sizeof(u32);
				*(u32 *)dest = make_data_loc((loc >> 16) - ret, (loc & 0xffff) + ret);
			}
			goto stage2;
		}
		code++;
		ret = total;
	}
	return code->op == FETCH_OP_END ? ret : -EILSEQ;
}
NOKPROBE_SYMBOL(process_fetch_insn);

static notrace int get_data_size(struct trace_probe *tp, struct pt_regs *regs, void *edata)
{
	int i, len, total = 0;

	for (i = 0; i < tp->nr_args; i++) {
		if (tp->args[i].dynamic) {
			len = process_fetch_insn(tp->args[i].code, regs, edata, NULL, NULL);
			if (len > 0)
				total += len;
		}
	}
	return total;
}
NOKPROBE_SYMBOL(get_data_size);

static notrace void store_trace_args(void *data, struct trace_probe *tp, struct pt_regs *regs, void *edata,
				     int header_size, int maxlen)
{
	void *base = data - header_size;
	void *dyndata = data + tp->size;
	int i, ret;

	for (i = 0; i < tp->nr_args; i++) {
		struct probe_arg *arg = &tp->args[i];
		u32 *dl = data + arg->offset;

		if (arg->dynamic)
			*dl = make_data_loc(maxlen, dyndata - base);
		ret = process_fetch_insn(arg->code, regs, edata, dl, base);
		if (arg->dynamic && ret > 0) {
			dyndata += ret;
			maxlen -= ret;
		}
	}
}
NOKPROBE_SYMBOL(store_trace_args);

static notrace void kprobe_trace_func(struct trace_kprobe *tk, struct pt_regs *regs)
{
	struct trace_event_buffer fbuffer;
	struct kprobe_trace_entry_head *entry;
	int dsize = get_data_size(&tk->tp, regs, NULL);

	entry = trace_event_buffer_reserve(&fbuffer, &tk->file, sizeof(*entry) + tk->tp.size + dsize, 0);
	if (!entry)
		return;
	entry->ip = (unsigned long)tk->rp.kp.addr;
	store_trace_args(&entry[1], &tk->tp, regs, NULL, sizeof(*entry), dsize);
	trace_event_buffer_commit(&fbuffer);
}
NOKPROBE_SYMBOL(kprobe_trace_func);

notrace int kprobe_dispatcher(struct kprobe *kp, struct pt_regs *regs)
{
	struct trace_kprobe *tk = container_of(kp, struct trace_kprobe, rp.kp);

	__asm__ __volatile__("lock incq %0" : "+m"(tk->nhit));
	if (READ_ONCE(tk->file.enabled))
		kprobe_trace_func(tk, regs);
	return 0;	/* the probed instruction runs as it would have */
}
NOKPROBE_SYMBOL(kprobe_dispatcher);

notrace int kretprobe_dispatcher(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct kretprobe *rp = get_kretprobe(ri);
	struct trace_kprobe *tk;
	struct trace_event_buffer fbuffer;
	struct kretprobe_trace_entry_head *entry;
	int dsize;

	if (!rp)
		return 0;
	tk = container_of(rp, struct trace_kprobe, rp);
	__asm__ __volatile__("lock incq %0" : "+m"(tk->nhit));
	if (!READ_ONCE(tk->file.enabled))
		return 0;
	dsize = get_data_size(&tk->tp, regs, ri->data);
	entry = trace_event_buffer_reserve(&fbuffer, &tk->file, sizeof(*entry) + tk->tp.size + dsize, 0);
	if (!entry)
		return 0;
	entry->func = (unsigned long)tk->rp.kp.addr;
	entry->ret_ip = (unsigned long)ri->ret_addr;
	store_trace_args(&entry[1], &tk->tp, regs, ri->data, sizeof(*entry), dsize);
	trace_event_buffer_commit(&fbuffer);
	return 0;
}
NOKPROBE_SYMBOL(kretprobe_dispatcher);

/* store_trace_entry_data: at the probed function's entry, the arguments a return probe's $argN read. */
notrace int kretprobe_entry_dispatcher(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct kretprobe *rp = get_kretprobe(ri);
	struct fetch_insn *code;
	unsigned long val = 0;

	if (!rp)
		return 0;
	code = container_of(rp, struct trace_kprobe, rp)->tp.entry_arg;
	for (; code && code->op != FETCH_OP_END; code++) {
		if (code->op == FETCH_OP_ARG)
			val = regs_get_kernel_argument(regs, code->param);
		else if (code->op == FETCH_OP_ST_EDATA)
			*(unsigned long *)((char *)ri->data + code->offset) = val;
	}
	return 0;
}
NOKPROBE_SYMBOL(kretprobe_entry_dispatcher);
