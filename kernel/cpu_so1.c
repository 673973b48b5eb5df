// SPDX-License-Identifier: GPL-2.0
//go:build ignore

/*
 * cpu_so1 - cumulative CPU time per state as JSON in /proc/<module name>.
 *
 * The counters are summed over the online CPUs exactly the way fs/proc/stat.c
 * builds the "cpu" line of /proc/stat: kcpustat_cpu_fetch() per CPU (correct
 * under VIRT_CPU_ACCOUNTING_GEN / nohz_full, where the raw per-CPU array lags)
 * and idle/iowait from the nohz idle accounting (get_cpu_{idle,iowait}_time_us),
 * falling back to kcpustat when that returns -1 (no NO_HZ).  Guest time is
 * already part of user/nice, as in /proc/stat; it is printed separately for
 * information only.  The unit is nanoseconds.
 *
 * The module keeps no state and never sleeps while reading: a reader computes
 * a percentage from two reads (busy = total - idle - iowait - steal).
 *
 * The "//go:build ignore" line above keeps the Go tool, which scans kernel/
 * because of its qemu test, from treating this file as cgo source.
 */
#include <linux/cpumask.h>
#include <linux/kernel_stat.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/tick.h>
#include <linux/time64.h>

struct vmp_cpu_sum {
	u64 user, nice, system, idle, iowait, irq, softirq, steal;
	u64 guest, guest_nice;
	unsigned int cpus;
};

/* Same as get_idle_time() in fs/proc/stat.c, for an online CPU. */
static u64 vmp_cpu_idle_ns(const struct kernel_cpustat *kcs, int cpu)
{
	u64 us = get_cpu_idle_time_us(cpu, NULL);

	if (us == (u64)-1)
		return kcs->cpustat[CPUTIME_IDLE];
	return us * NSEC_PER_USEC;
}

/* Same as get_iowait_time() in fs/proc/stat.c, for an online CPU. */
static u64 vmp_cpu_iowait_ns(const struct kernel_cpustat *kcs, int cpu)
{
	u64 us = get_cpu_iowait_time_us(cpu, NULL);

	if (us == (u64)-1)
		return kcs->cpustat[CPUTIME_IOWAIT];
	return us * NSEC_PER_USEC;
}

static void vmp_cpu_collect(struct vmp_cpu_sum *s)
{
	struct kernel_cpustat kcs;
	int cpu;

	memset(s, 0, sizeof(*s));
	for_each_online_cpu(cpu) {
		kcpustat_cpu_fetch(&kcs, cpu);
		s->user += kcs.cpustat[CPUTIME_USER];
		s->nice += kcs.cpustat[CPUTIME_NICE];
		s->system += kcs.cpustat[CPUTIME_SYSTEM];
		s->idle += vmp_cpu_idle_ns(&kcs, cpu);
		s->iowait += vmp_cpu_iowait_ns(&kcs, cpu);
		s->irq += kcs.cpustat[CPUTIME_IRQ];
		s->softirq += kcs.cpustat[CPUTIME_SOFTIRQ];
		s->steal += kcs.cpustat[CPUTIME_STEAL];
		s->guest += kcs.cpustat[CPUTIME_GUEST];
		s->guest_nice += kcs.cpustat[CPUTIME_GUEST_NICE];
		s->cpus++;
	}
}

static int vmp_cpu_show(struct seq_file *m, void *v)
{
	struct vmp_cpu_sum s;

	vmp_cpu_collect(&s);
	seq_printf(m,
		   "{\"unit\":\"ns\",\"cpus\":%u,\"user\":%llu,\"nice\":%llu,"
		   "\"system\":%llu,\"idle\":%llu,\"iowait\":%llu,\"irq\":%llu,"
		   "\"softirq\":%llu,\"steal\":%llu,\"guest\":%llu,"
		   "\"guest_nice\":%llu}\n",
		   s.cpus, s.user, s.nice, s.system, s.idle, s.iowait, s.irq,
		   s.softirq, s.steal, s.guest, s.guest_nice);
	return 0;
}

static int __init vmp_cpu_init(void)
{
	if (!proc_create_single(KBUILD_MODNAME, 0444, NULL, vmp_cpu_show))
		return -ENOMEM;
	pr_info("%s: /proc/%s ready\n", KBUILD_MODNAME, KBUILD_MODNAME);
	return 0;
}

static void __exit vmp_cpu_exit(void)
{
	remove_proc_entry(KBUILD_MODNAME, NULL);
}

module_init(vmp_cpu_init);
module_exit(vmp_cpu_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("vmpulse");
MODULE_DESCRIPTION("Cumulative CPU time per state (ns, summed over online CPUs) as JSON in /proc");
