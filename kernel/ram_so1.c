// SPDX-License-Identifier: GPL-2.0
//go:build ignore

/*
 * ram_so1 - memory of the machine as JSON in /proc/<module name>.
 *
 * total is si_meminfo()'s totalram (MemTotal of /proc/meminfo), libre is
 * si_mem_available() (MemAvailable: free memory plus what can be reclaimed
 * without swapping, not MemFree), uso = total - libre.  RAM figures are MiB
 * (rounded down) and also KiB for exact arithmetic; porcentaje_ram is
 * 100 * uso / total with two decimals, computed from the KiB values.
 *
 * The "//go:build ignore" line above keeps the Go tool, which scans kernel/
 * because of its qemu test, from treating this file as cgo source.
 */
#include <linux/math64.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>

/* Pages to KiB, as fs/proc/meminfo.c does. */
#define VMP_PAGES_TO_KIB(p) ((unsigned long long)(p) << (PAGE_SHIFT - 10))

static int vmp_ram_show(struct seq_file *m, void *v)
{
	struct sysinfo si;
	long avail_pages;
	unsigned long long total_kib, free_kib, used_kib, pct100;

	si_meminfo(&si);
	avail_pages = si_mem_available();
	if (avail_pages < 0)
		avail_pages = 0;

	total_kib = VMP_PAGES_TO_KIB(si.totalram);
	free_kib = VMP_PAGES_TO_KIB(avail_pages);
	if (free_kib > total_kib)
		free_kib = total_kib;
	used_kib = total_kib - free_kib;
	/* Percentage with two decimals, rounded to nearest. */
	pct100 = total_kib ? div64_u64(used_kib * 10000 + total_kib / 2, total_kib) : 0;

	seq_printf(m,
		   "{\"unit\":\"MiB\",\"total_ram\":%llu,\"ram_libre\":%llu,"
		   "\"uso_ram\":%llu,\"porcentaje_ram\":%llu.%02llu,"
		   "\"total_kib\":%llu,\"libre_kib\":%llu,\"uso_kib\":%llu}\n",
		   total_kib >> 10, free_kib >> 10, (total_kib >> 10) - (free_kib >> 10),
		   pct100 / 100, pct100 % 100, total_kib, free_kib, used_kib);
	return 0;
}

static int __init vmp_ram_init(void)
{
	if (!proc_create_single(KBUILD_MODNAME, 0444, NULL, vmp_ram_show))
		return -ENOMEM;
	pr_info("%s: /proc/%s ready\n", KBUILD_MODNAME, KBUILD_MODNAME);
	return 0;
}

static void __exit vmp_ram_exit(void)
{
	remove_proc_entry(KBUILD_MODNAME, NULL);
}

module_init(vmp_ram_init);
module_exit(vmp_ram_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("vmpulse");
MODULE_DESCRIPTION("Total, available and used RAM (MiB) as JSON in /proc");
