//! `multiprocessing.Manager`: a dict, a list and a queue shared by processes.
//!
//! Three examples from the posts, one after the other. The first: ten
//! processes, one at a time, each set `dic["num"]` and print the items.
//!
//! ```python
//! from multiprocessing import Process, Manager
//!
//! def func(i, dic):
//!     dic["num"] = 100 + i
//!     print(dic.items())
//!
//! if __name__ == '__main__':
//!     dic = Manager().dict()
//!     for i in range(10):
//!         p = Process(target=func, args=(i, dic))
//!         p.start()
//!         p.join()
//! ```
//!
//! The second: ten processes at once write to a dict and append to a list
//! that starts as `range(5)`.
//!
//! ```python
//! from multiprocessing import Process, Manager
//!
//! def f(d, l, n):
//!     d[n] = '1'
//!     d['2'] = 2
//!     l.append(n)
//!
//! if __name__ == '__main__':
//!     with Manager() as manager:
//!         d = manager.dict()
//!         l = manager.list(range(5))
//!         p_list = []
//!         for i in range(10):
//!             p = Process(target=f, args=(d, l, i))
//!             p.start()
//!             p_list.append(p)
//!         for res in p_list:
//!             res.join()
//!         print(d)
//!         print(l)
//! ```
//!
//! The third: four workers take items from a managed queue of size 4 until
//! they get `None`, and append their results to a managed list (the
//! original sleeps 5 s per item; this one does not).
//!
//! ```python
//! def do_work(in_queue, out_list):
//!     while True:
//!         item = in_queue.get()
//!         if item == None:
//!             return
//!         out_list.append(item)
//!
//! if __name__ == "__main__":
//!     num_workers = 4
//!     manager = Manager()
//!     results = manager.list()
//!     work = manager.Queue(num_workers)
//!     pool = []
//!     for i in range(num_workers):
//!         p = Process(target=do_work, args=(work, results))
//!         p.start()
//!         pool.append(p)
//!     iters = itertools.chain([1,2,3,4,5,6,7,8,9,10,11,12], (None,)*num_workers)
//!     for item in iters:
//!         work.put(item)
//!     for p in pool:
//!         p.join()
//!     print(results)
//! ```
//!
//! A Rust dict has one key type and one value type: Python's `d[n] = '1'` and
//! `d['2'] = 2` become `String` keys and values here.

#[mp::job]
fn func(i: i32, dic: mp::DictProxy<String, i32>) {
    dic.insert("num".into(), 100 + i).unwrap();
    println!("{:?}", dic.items().unwrap());
}

#[mp::job]
fn f(d: mp::DictProxy<String, String>, l: mp::ListProxy<i32>, n: i32) {
    d.insert(n.to_string(), "1".into()).unwrap();
    d.insert("2".into(), "2".into()).unwrap();
    l.push(n).unwrap();
}

#[mp::job]
fn do_work(in_queue: mp::QueueProxy<Option<u32>>, out_list: mp::ListProxy<u32>) {
    while let Some(item) = in_queue.get().unwrap() {
        println!(
            "{} finished task {item}, {} left in the queue",
            mp::current_process().name(),
            in_queue.len().unwrap()
        );
        out_list.push(item).unwrap();
    }
}

mp::main! {
    fn main() {
        // 1. Manager().dict(), filled by ten processes one at a time.
        let manager = mp::Manager::start().unwrap();
        let dic: mp::DictProxy<String, i32> = manager.dict().unwrap();
        for i in 0..10 {
            let p = mp::Process::spawn(func, (i, dic.clone())).unwrap();
            p.join().unwrap();
        }
        assert_eq!(dic.get(&"num".into()).unwrap(), Some(109));

        // 2. A dict and a list(range(5)), written by ten processes at once.
        let d: mp::DictProxy<String, String> = manager.dict().unwrap();
        let l: mp::ListProxy<i32> = manager.list_from(0..5).unwrap();
        let p_list: Vec<_> = (0..10)
            .map(|i| mp::Process::spawn(f, (d.clone(), l.clone(), i)).unwrap())
            .collect();
        for p in p_list {
            p.join().unwrap();
        }
        println!("{:?}", d.items().unwrap());
        println!("{:?}", l.to_vec().unwrap());
        assert_eq!(d.len().unwrap(), 10);
        assert_eq!(l.len().unwrap(), 15);

        // 3. Four workers draining a queue of size 4 into a list.
        let num_workers = 4;
        let results: mp::ListProxy<u32> = manager.list().unwrap();
        let work: mp::QueueProxy<Option<u32>> = manager.queue_bounded(num_workers).unwrap();
        let pool: Vec<_> = (0..num_workers)
            .map(|_| mp::Process::spawn(do_work, (work.clone(), results.clone())).unwrap())
            .collect();
        for item in (1..=12).map(Some).chain(std::iter::repeat_n(None, num_workers)) {
            work.put(item).unwrap();
            println!("queued task: {item:?}");
        }
        for p in pool {
            p.join().unwrap();
        }
        let mut done = results.to_vec().unwrap();
        println!("{done:?}");
        done.sort_unstable();
        assert_eq!(done, (1..=12).collect::<Vec<_>>());
        // Dropping the manager stops its server (Python's `with Manager() as manager:`).
    }
}
