/* list.h - an intrusive doubly linked list of process-private objects (a
   process's children, a pool's live handles and iterators). */
#ifndef MP_LIST_H
#define MP_LIST_H

#include <stddef.h>

/* mp__link - the links an object embeds to be on one mp__list. A link
   that is on no list has both pointers NULL. */
typedef struct mp__link {
    struct mp__link *next; /* NULL: last */
    struct mp__link *prev; /* NULL: first */
} mp__link;

/* mp__list - the head of a list; all-zero is the empty list. */
typedef struct mp__list {
    mp__link *first; /* NULL: empty */
} mp__list;

/* mp__list_push - put l at the front of list. */
static inline void mp__list_push(mp__list *list, mp__link *l)
{
    l->prev = NULL;
    l->next = list->first;
    if (list->first != NULL)
        list->first->prev = l;
    list->first = l;
}

/* mp__list_remove - take l off list; a link on no list is left alone. */
static inline void mp__list_remove(mp__list *list, mp__link *l)
{
    if (l->prev == NULL && list->first != l)
        return;
    if (l->prev != NULL)
        l->prev->next = l->next;
    else
        list->first = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
    l->next = l->prev = NULL;
}

/* mp__list_entry - the object of type T whose member m is link l (NULL
   for a NULL link). */
#define mp__list_entry(l, T, m)                                                \
    ((l) == NULL ? (T *)NULL : (T *)(void *)((char *)(l)-offsetof(T, m)))

#endif /* MP_LIST_H */
