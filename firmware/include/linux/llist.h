/* Singly linked lists with a head pointer (include/linux/llist.h), no atomics needed here. */
#ifndef _LINUX_LLIST_H
#define _LINUX_LLIST_H

struct llist_node {
	struct llist_node *next;
};

struct llist_head {
	struct llist_node *first;
};

#endif
