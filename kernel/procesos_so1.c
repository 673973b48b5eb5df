// SPDX-License-Identifier: GPL-2.0
//go:build ignore

/*
 * procesos_so1 - processes by state as JSON in /proc/<module name>.
 *
 * What is counted: processes, i.e. thread-group leaders, as `ps -e` and the
 * numeric directories of /proc show them (user processes and kernel threads;
 * the threads of a multi-threaded process are not counted separately).
 *
 * The state of a process is R when any of its threads is runnable: a busy
 * multi-threaded program whose main thread waits (pthread_join, an event loop
 * handing work to a pool) is running, not sleeping.  Otherwise it is the state
 * of its leader.  Each state is classified with task_state_index() (the
 * function /proc/<pid>/stat uses, which also folds in exit_state for zombies)
 * and task_index_to_char():
 *
 *   procesos_corriendo  R (any thread)
 *   procesos_durmiendo  S + D + I  (interruptible, uninterruptible, idle kthreads)
 *   procesos_zombie     Z
 *   procesos_parados    T + t      (stopped, traced)
 *   procesos_otros      anything else (X dead, P parked, ...)
 *
 * so the five counts always add up to total_procesos.  The walk runs under
 * rcu_read_lock(), which for_each_process() and for_each_thread() require,
 * and never sleeps; the threads of a process are walked only when its leader
 * is not running.  It is a consistent count of the tasks it visits, not an
 * atomic snapshot of a system that keeps forking.
 *
 * top_procesos lists the VMP_TOP user processes with the largest resident set
 * (file + anon + shmem pages, as get_mm_rss()), each with its process state
 * as above.  task->mm is read under
 * task_lock(), which is what keeps the mm alive (exit_mm() clears task->mm
 * under the same lock before dropping its reference), so no mm reference is
 * taken and nothing can sleep: get_task_mm()/mmput() are not usable under RCU.
 * Kernel threads and zombies have no mm and are never listed.
 *
 * The "//go:build ignore" line above keeps the Go tool, which scans kernel/
 * because of its qemu test, from treating this file as cgo source.
 */
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/seq_file.h>
#include <linux/string.h>

#define VMP_TOP 10

struct vmp_proc_entry {
	unsigned long rss; /* pages */
	pid_t pid;
	char state;
	char comm[TASK_COMM_LEN];
};

struct vmp_proc_counts {
	unsigned long total, running, sleeping, zombie, stopped, other;
};

static void vmp_proc_classify(struct vmp_proc_counts *c, char state)
{
	c->total++;
	switch (state) {
	case 'R':
		c->running++;
		break;
	case 'S':
	case 'D':
	case 'I':
		c->sleeping++;
		break;
	case 'Z':
		c->zombie++;
		break;
	case 'T':
	case 't':
		c->stopped++;
		break;
	default:
		c->other++;
		break;
	}
}

/*
 * Offer one process to the top list, kept sorted by rss, largest first.
 * Called with task_lock(p) held; copies what it needs.
 */
static void vmp_proc_top_offer(struct vmp_proc_entry *top, int *n,
			       struct task_struct *p, unsigned long rss,
			       char state)
{
	int i;

	if (*n == VMP_TOP && rss <= top[VMP_TOP - 1].rss)
		return;
	i = (*n < VMP_TOP) ? (*n)++ : VMP_TOP - 1;
	while (i > 0 && top[i - 1].rss < rss) {
		top[i] = top[i - 1];
		i--;
	}
	top[i].rss = rss;
	top[i].pid = task_tgid_nr(p);
	top[i].state = state;
	strscpy(top[i].comm, p->comm, sizeof(top[i].comm));
}

/*
 * Print s as a JSON string.  comm is arbitrary bytes (prctl(PR_SET_NAME)) cut
 * at 15 bytes, possibly inside a UTF-8 sequence: quote and backslash are
 * escaped, control characters become \u00XX, and bytes outside ASCII become
 * '?' so that the output is always valid UTF-8 JSON.
 */
static void vmp_seq_json_string(struct seq_file *m, const char *s)
{
	seq_putc(m, '"');
	for (; *s; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\')
			seq_printf(m, "\\%c", c);
		else if (c < 0x20)
			seq_printf(m, "\\u%04x", c);
		else if (c >= 0x7f)
			seq_putc(m, '?');
		else
			seq_putc(m, c);
	}
	seq_putc(m, '"');
}

/*
 * The state letter of process p: 'R' when any of its threads is runnable,
 * otherwise its leader's.  Called under rcu_read_lock().
 */
static char vmp_proc_state(struct task_struct *p)
{
	char state = task_state_to_char(p);
	struct task_struct *t;

	if (state == 'R')
		return state;
	for_each_thread(p, t) {
		if (t != p && task_state_to_char(t) == 'R')
			return 'R';
	}
	return state;
}

static int vmp_proc_show(struct seq_file *m, void *v)
{
	struct vmp_proc_entry top[VMP_TOP];
	struct vmp_proc_counts c = { 0 };
	struct task_struct *p;
	int ntop = 0, i;

	rcu_read_lock();
	for_each_process(p) {
		char state = vmp_proc_state(p);
		struct mm_struct *mm;

		vmp_proc_classify(&c, state);
		if (p->flags & PF_KTHREAD)
			continue;
		task_lock(p);
		mm = p->mm;
		if (mm)
			vmp_proc_top_offer(top, &ntop, p, get_mm_rss(mm), state);
		task_unlock(p);
	}
	rcu_read_unlock();

	seq_printf(m,
		   "{\"total_procesos\":%lu,\"procesos_corriendo\":%lu,"
		   "\"procesos_durmiendo\":%lu,\"procesos_zombie\":%lu,"
		   "\"procesos_parados\":%lu,\"procesos_otros\":%lu,"
		   "\"top_procesos\":[",
		   c.total, c.running, c.sleeping, c.zombie, c.stopped, c.other);
	for (i = 0; i < ntop; i++) {
		unsigned long long kib = (unsigned long long)top[i].rss << (PAGE_SHIFT - 10);

		seq_printf(m, "%s{\"pid\":%d,\"name\":", i ? "," : "", top[i].pid);
		vmp_seq_json_string(m, top[i].comm);
		seq_printf(m, ",\"state\":\"%c\",\"rss_mib\":%llu,\"rss_kib\":%llu}",
			   top[i].state, kib >> 10, kib);
	}
	seq_puts(m, "]}\n");
	return 0;
}

static int __init vmp_proc_init(void)
{
	if (!proc_create_single(KBUILD_MODNAME, 0444, NULL, vmp_proc_show))
		return -ENOMEM;
	pr_info("%s: /proc/%s ready\n", KBUILD_MODNAME, KBUILD_MODNAME);
	return 0;
}

static void __exit vmp_proc_exit(void)
{
	remove_proc_entry(KBUILD_MODNAME, NULL);
}

module_init(vmp_proc_init);
module_exit(vmp_proc_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("vmpulse");
MODULE_DESCRIPTION("Processes by state and the largest by RSS as JSON in /proc");
