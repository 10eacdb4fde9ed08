// SPDX-License-Identifier: GPL-2.0
/* vsnprintf with the conversions the kernel's messages use. */
#include <linux/kernel.h>
#include <linux/string.h>
#include <linux/gfp.h>

struct printf_spec {
	int width;
	int precision;
	char pad;
	bool left;
	bool plus;
};

static notrace size_t emit(char *buf, size_t size, size_t pos, char c)
{
	if (pos + 1 < size)
		buf[pos] = c;
	return pos + 1;
}

static notrace size_t emit_str(char *buf, size_t size, size_t pos, const char *s,
			       struct printf_spec *spec)
{
	size_t len = strnlen(s, spec->precision >= 0 ? (size_t)spec->precision : (size_t)-1);
	int padding = spec->width > (int)len ? spec->width - (int)len : 0;

	if (!spec->left)
		while (padding-- > 0)
			pos = emit(buf, size, pos, ' ');
	while (len--)
		pos = emit(buf, size, pos, *s++);
	while (padding-- > 0)
		pos = emit(buf, size, pos, ' ');
	return pos;
}

static notrace size_t emit_number(char *buf, size_t size, size_t pos, unsigned long long num,
				  bool negative, int base, bool upper, struct printf_spec *spec)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	int n = 0, len, padding;

	do {
		tmp[n++] = digits[num % base];
		num /= base;
	} while (num);
	while (n < spec->precision)
		tmp[n++] = '0';
	len = n + (negative || spec->plus);
	padding = spec->width > len ? spec->width - len : 0;
	if (!spec->left && spec->pad == ' ')
		while (padding-- > 0)
			pos = emit(buf, size, pos, ' ');
	if (negative)
		pos = emit(buf, size, pos, '-');
	else if (spec->plus)
		pos = emit(buf, size, pos, '+');
	if (!spec->left && spec->pad == '0')
		while (padding-- > 0)
			pos = emit(buf, size, pos, '0');
	while (n--)
		pos = emit(buf, size, pos, tmp[n]);
	while (padding-- > 0)
		pos = emit(buf, size, pos, ' ');
	return pos;
}

struct flag_name {
	unsigned long mask;
	const char *name;
};

static const struct flag_name gfpflag_names[] = { __def_gfpflag_names };

/* %pGg: names joined by '|', the bits no name covers in hex, as lib/vsprintf.c's format_flags. */
static notrace size_t emit_gfp_flags(char *buf, size_t size, size_t pos, unsigned long flags)
{
	struct printf_spec str = { .precision = -1, .pad = ' ' };
	struct printf_spec hex = { .precision = -1, .pad = ' ' };
	size_t i;

	for (i = 0; flags && i < ARRAY_SIZE(gfpflag_names); i++) {
		unsigned long mask = gfpflag_names[i].mask;

		if ((flags & mask) != mask)
			continue;
		pos = emit_str(buf, size, pos, gfpflag_names[i].name, &str);
		flags &= ~mask;
		if (flags)
			pos = emit(buf, size, pos, '|');
	}
	if (flags) {
		pos = emit_str(buf, size, pos, "0x", &str);
		pos = emit_number(buf, size, pos, flags, false, 16, false, &hex);
	}
	return pos;
}

notrace int vsnprintf(char *buf, size_t size, const char *fmt, va_list args)
{
	size_t pos = 0;

	for (; *fmt; fmt++) {
		struct printf_spec spec = { .width = 0, .precision = -1, .pad = ' ' };
		int lng = 0;

		if (*fmt != '%') {
			pos = emit(buf, size, pos, *fmt);
			continue;
		}
		fmt++;
		for (;; fmt++) {
			if (*fmt == '-')
				spec.left = true;
			else if (*fmt == '0')
				spec.pad = '0';
			else if (*fmt == '+')
				spec.plus = true;
			else
				break;
		}
		if (*fmt == '*') {
			spec.width = va_arg(args, int);
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			spec.width = spec.width * 10 + (*fmt++ - '0');
		if (*fmt == '.') {
			fmt++;
			spec.precision = 0;
			if (*fmt == '*') {
				spec.precision = va_arg(args, int);
				fmt++;
			}
			while (*fmt >= '0' && *fmt <= '9')
				spec.precision = spec.precision * 10 + (*fmt++ - '0');
		}
		while (*fmt == 'l' || *fmt == 'z') {
			lng++;
			fmt++;
		}
		switch (*fmt) {
		case 'd':
		case 'i': {
			long long v = lng ? va_arg(args, long long) : va_arg(args, int);
			pos = emit_number(buf, size, pos, v < 0 ? -(unsigned long long)v : v, v < 0, 10,
					  false, &spec);
			break;
		}
		case 'u':
		case 'x':
		case 'X': {
			unsigned long long v = lng ? va_arg(args, unsigned long long)
						   : va_arg(args, unsigned int);
			pos = emit_number(buf, size, pos, v, false, *fmt == 'u' ? 10 : 16, *fmt == 'X',
					  &spec);
			break;
		}
		case 'p': {
			unsigned long v = (unsigned long)va_arg(args, void *);
			if (fmt[1] == 'G' && fmt[2] == 'g') {
				fmt += 2;
				pos = emit_gfp_flags(buf, size, pos, *(const gfp_t *)v);
				break;
			}
			while (fmt[1] >= 'a' && fmt[1] <= 'z')
				fmt++; /* %px, %pS: raw address */
			spec.pad = '0';
			spec.width = 16;
			pos = emit_number(buf, size, pos, v, false, 16, false, &spec);
			break;
		}
		case 's': {
			const char *s = va_arg(args, const char *);
			pos = emit_str(buf, size, pos, s ? s : "(null)", &spec);
			break;
		}
		case 'c':
			pos = emit(buf, size, pos, (char)va_arg(args, int));
			break;
		case '%':
			pos = emit(buf, size, pos, '%');
			break;
		default:
			pos = emit(buf, size, pos, '%');
			if (!*fmt)
				goto out;
			pos = emit(buf, size, pos, *fmt);
		}
	}
out:
	if (size)
		buf[pos < size ? pos : size - 1] = '\0';
	return pos;
}

notrace int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list args;
	int r;

	va_start(args, fmt);
	r = vsnprintf(buf, size, fmt, args);
	va_end(args);
	return r;
}

notrace int scnprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list args;
	int r;

	va_start(args, fmt);
	r = vsnprintf(buf, size, fmt, args);
	va_end(args);
	if (size == 0)
		return 0;
	return r < (int)size ? r : (int)size - 1;
}

notrace long simple_strtol(const char *s, char **end, unsigned int base)
{
	long v = 0;
	int neg = 0;

	if (*s == '-') {
		neg = 1;
		s++;
	}
	if (!base) {
		base = 10;
		if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
			base = 16;
			s += 2;
		}
	}
	for (;; s++) {
		int d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		if (d >= (int)base)
			break;
		v = v * base + d;
	}
	if (end)
		*end = (char *)s;
	return neg ? -v : v;
}

/* What modules may link against, as Linux exports it (at the end, so that no __LINE__ moves). */
EXPORT_SYMBOL(vsnprintf);
EXPORT_SYMBOL(snprintf);
