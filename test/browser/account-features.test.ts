// Everything a signed-in user can do through the API, done from the account
// page in headless Chromium and checked against the API itself: name and email
// (after the password), password change (other devices signed out), task lists
// (tasks in a list, the filter, rename, delete with its tasks), secret messages
// (create, read, edit, delete) and logging out from the sessions list, which
// says that it logs out.
import { existsSync } from 'node:fs'
import type { Page } from 'playwright-core'
import t from 'tap'
import { PASSWORD, signup, uniqueEmail } from '../helper.js'
import {
  alertWith,
  CHROMIUM,
  fitsWidth,
  form,
  listList,
  logIn,
  openDevice,
  PHONE,
  screenshot,
  secretList,
  sessionList,
  signUp,
  startLatchkey,
  statusWith,
  taskList,
  viaApi,
  waitSignedIn,
  waitSignedOut,
} from './account-helper.js'

interface Titled {
  title: string | null
}
interface Page_<T> {
  items: T[]
}

const titles = (page: Page_<Titled>) => page.items.map((item) => item.title)

async function addTask(page: Page, title: string, list = 'No list'): Promise<void> {
  await page.getByLabel('In list', { exact: true }).selectOption({ label: list })
  await page.getByLabel('New task', { exact: true }).fill(title)
  await page.getByRole('button', { name: 'Add task' }).click()
  await page
    .getByRole('status')
    .filter({ hasText: `Added task: ${title}` })
    .waitFor({ state: 'attached' })
}

async function taskNames(page: Page): Promise<string[]> {
  return taskList(page)
    .getByRole('checkbox')
    .evaluateAll((boxes) => boxes.map((box) => box.labels?.[0]?.textContent ?? ''))
}

if (!existsSync(CHROMIUM)) {
  t.skip(`account page in Chromium: ${CHROMIUM} is not installed (apt-get install chromium)`, () => {})
} else {
  t.test('account features in Chromium', async (t) => {
    const { app, origin } = await startLatchkey(t)
    let email = uniqueEmail('features')
    let password = PASSWORD
    const desk = await openDevice(t)
    const { page } = desk
    await page.goto(`${origin}/`)
    await signUp(page, email, 'Ada')
    await waitSignedIn(page, 'Ada')

    await t.test('name and email: the password first, then the change', async (t) => {
      const profile = form(page, 'Name and email')
      await profile.getByLabel('Current password', { exact: true }).fill(PASSWORD)
      await profile.getByRole('button', { name: 'Save changes' }).click()
      await alertWith(page, 'Nothing to save: change your name or email first.').waitFor()

      await profile.getByLabel('Display name', { exact: true }).fill('Ada King')
      await profile.getByLabel('Current password', { exact: true }).fill('not the password')
      await profile.getByRole('button', { name: 'Save changes' }).click()
      await alertWith(page, 'That password is not right.').waitFor()
      await profile.getByLabel('Current password', { exact: true }).fill(PASSWORD)
      await profile.getByRole('button', { name: 'Save changes' }).click()
      await waitSignedIn(page, 'Ada King')
      await statusWith(page, /^Saved\.$/).waitFor()
      t.equal(await profile.getByLabel('Current password', { exact: true }).inputValue(), '', 'password cleared')

      // A taken address is refused; a free one is taken at once (verification not required here).
      const other = await signup(app, { email: uniqueEmail('taken') })
      await profile.getByLabel('Email', { exact: true }).fill(other.email)
      await profile.getByLabel('Current password', { exact: true }).fill(PASSWORD)
      await profile.getByRole('button', { name: 'Save changes' }).click()
      await alertWith(page, 'That email is already used by another account.').waitFor()
      const newEmail = uniqueEmail('renamed')
      await profile.getByLabel('Email', { exact: true }).fill(newEmail.toUpperCase())
      await profile.getByLabel('Current password', { exact: true }).fill(PASSWORD)
      await profile.getByRole('button', { name: 'Save changes' }).click()
      await page.getByText(`Signed in as ${newEmail}`).waitFor()
      await statusWith(page, `Your email address is now ${newEmail}`).waitFor()
      // The new address is not confirmed yet: the banner says where the link went.
      const banner = page.getByRole('region', { name: 'Confirm your email address' })
      await banner.waitFor()
      t.match(await banner.innerText(), newEmail)
      email = newEmail
      const { user } = await viaApi<{ user: { email: string; displayName: string; emailVerified: boolean } }>(
        app,
        email,
        '/users/me',
      )
      t.match(user, { email: newEmail, displayName: 'Ada King', emailVerified: false }, 'the API agrees')
      await screenshot(page, 'features-01-profile')
    })

    await t.test(
      'password: a wrong current one, a weak new one, then the change; other devices signed out',
      async (t) => {
        const phone = await openDevice(t, { viewport: PHONE })
        await phone.page.goto(`${origin}/`)
        await logIn(phone.page, email)
        await waitSignedIn(phone.page, 'Ada King')

        const change = form(page, 'Password')
        await change.getByLabel('Current password', { exact: true }).fill('wrong password here')
        await change.getByLabel('New password', { exact: true }).fill('a brand new passphrase')
        await change.getByRole('button', { name: 'Change password' }).click()
        await alertWith(page, 'Your current password is not right.').waitFor()
        await change.getByLabel('Current password', { exact: true }).fill(PASSWORD)
        await change.getByLabel('New password', { exact: true }).fill('password')
        await change.getByRole('button', { name: 'Change password' }).click()
        await alertWith(page, 'That password is too weak').waitFor()
        password = 'a brand new passphrase'
        await change.getByLabel('New password', { exact: true }).fill(password)
        await change.getByRole('button', { name: 'Change password' }).click()
        await statusWith(page, 'Your password is changed. Your other sessions were logged out.').waitFor()
        await sessionList(page).getByRole('listitem').filter({ hasText: 'Safari' }).waitFor({ state: 'detached' })
        t.equal(await sessionList(page).getByRole('listitem').count(), 1, 'only this device is left')

        await phone.page.reload()
        await waitSignedOut(phone.page)
        const old = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: PASSWORD } })
        t.equal(old.statusCode, 401, 'the old password is refused')
        const now = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } })
        t.equal(now.statusCode, 200, 'the new one works')
        t.same(phone.problems, [])
      },
    )

    await t.test('lists: add, put tasks in them, filter, rename, delete with their tasks', async (t) => {
      const lists = form(page, 'New list')
      await lists.getByLabel('New list', { exact: true }).fill('Home')
      await lists.getByLabel('Description (optional)', { exact: true }).fill('Chores and errands')
      await lists.getByRole('button', { name: 'Add list' }).click()
      await listList(page).getByText('Home', { exact: true }).waitFor()
      await lists.getByLabel('New list', { exact: true }).fill('Work')
      await lists.getByRole('button', { name: 'Add list' }).click()
      await listList(page).getByText('Work', { exact: true }).waitFor()
      t.match(
        await listList(page).innerText(),
        /Work[\s\S]*Home[\s\S]*Chores and errands/,
        'newest first, with its description',
      )

      await addTask(page, 'Buy milk', 'Home')
      await addTask(page, 'Send report', 'Work')
      await addTask(page, 'Call mum')
      t.same(await taskNames(page), ['Call mum', 'Send report', 'Buy milk'])
      const milk = taskList(page).getByRole('listitem').filter({ hasText: 'Buy milk' })
      t.equal(await milk.locator('.tag').innerText(), 'Home', "a task's list shows beside it")

      await page.getByLabel('Show', { exact: true }).selectOption({ label: 'Home' })
      await taskList(page).getByRole('checkbox', { name: 'Call mum' }).waitFor({ state: 'detached' })
      t.same(await taskNames(page), ['Buy milk'], 'the filter shows one list')
      t.equal(
        await page.getByLabel('In list', { exact: true }).inputValue(),
        await page.getByLabel('Show').inputValue(),
      )
      await addTask(page, 'Water plants', 'Home')
      t.same(await taskNames(page), ['Water plants', 'Buy milk'])
      await listList(page).getByRole('button', { name: 'Show tasks of list: Work' }).click()
      await taskList(page).getByRole('checkbox', { name: 'Send report' }).waitFor()
      t.same(await taskNames(page), ['Send report'])
      await page.getByLabel('Show', { exact: true }).selectOption({ label: 'All tasks' })
      await taskList(page).getByRole('checkbox', { name: 'Call mum' }).waitFor()
      await screenshot(page, 'features-02-lists')

      await listList(page).getByRole('button', { name: 'Edit list: Home' }).click()
      const edit = form(page, 'Edit list: Home')
      await edit.getByLabel('Title', { exact: true }).fill('House')
      await edit.getByRole('button', { name: 'Save list' }).click()
      await listList(page).getByText('House', { exact: true }).waitFor()
      t.equal(await milk.locator('.tag').innerText(), 'House', 'the tags follow the new name')
      t.same(titles(await viaApi<Page_<Titled>>(app, email, '/lists', password)), ['Work', 'House'])

      // Deleting asks first; cancel keeps it.
      await listList(page).getByRole('button', { name: 'Delete list: House' }).click()
      const dialog = page.getByRole('dialog', { name: 'Delete the list "House"?' })
      await dialog.waitFor()
      t.match(await dialog.innerText(), /Its tasks are deleted with it/)
      await screenshot(page, 'features-03-delete-list')
      await dialog.getByRole('button', { name: 'Cancel' }).click()
      await dialog.waitFor({ state: 'hidden' })
      t.equal(await listList(page).getByText('House', { exact: true }).count(), 1, 'still there')
      await listList(page).getByRole('button', { name: 'Delete list: House' }).click()
      await dialog.getByRole('button', { name: 'Delete list' }).click()
      await listList(page).getByText('House', { exact: true }).waitFor({ state: 'detached' })
      await taskList(page).getByRole('checkbox', { name: 'Buy milk' }).waitFor({ state: 'detached' })
      t.same(await taskNames(page), ['Call mum', 'Send report'], "the list's tasks went with it")
      t.same(titles(await viaApi<Page_<Titled>>(app, email, '/tasks', password)), ['Call mum', 'Send report'])
      t.same(titles(await viaApi<Page_<Titled>>(app, email, '/lists', password)), ['Work'])
    })

    await t.test('secret messages: create, read, edit, delete', async (t) => {
      const create = form(page, 'New secret message')
      await create.getByLabel('Title (optional)', { exact: true }).fill('Wifi')
      await create.getByLabel('Message', { exact: true }).fill('The password is\non the fridge')
      await create.getByRole('button', { name: 'Save secret' }).click()
      const wifi = secretList(page).getByRole('listitem').filter({ hasText: 'Wifi' })
      await wifi.waitFor()
      t.notMatch(await secretList(page).innerText(), /fridge/, 'the message stays hidden until asked for')
      await create.getByLabel('Message', { exact: true }).fill('no title on this one')
      await create.getByRole('button', { name: 'Save secret' }).click()
      await secretList(page).getByText('Untitled secret', { exact: true }).waitFor()

      const read = wifi.getByRole('button', { name: 'Read secret: Wifi' })
      const opened = page.waitForResponse((r) => r.request().method() === 'GET' && /\/secrets\/[^?]+$/.test(r.url()))
      await read.click()
      t.equal((await opened).status(), 200, 'read with GET /secrets/:id')
      await wifi.getByText('on the fridge').waitFor()
      t.equal(await wifi.locator('.secret-message').innerText(), 'The password is\non the fridge', 'line breaks kept')
      t.equal(
        await wifi.getByRole('button', { name: 'Hide secret: Wifi' }).getAttribute('aria-expanded'),
        'true',
        'the button now hides it, and says it is open',
      )
      await screenshot(page, 'features-04-secret-read')
      await wifi.getByRole('button', { name: 'Hide secret: Wifi' }).click()
      await wifi.getByText('on the fridge').waitFor({ state: 'detached' })

      await wifi.getByRole('button', { name: 'Edit secret: Wifi' }).click()
      const edit = form(page, 'Edit secret: Wifi')
      t.equal(await edit.getByLabel('Message', { exact: true }).inputValue(), 'The password is\non the fridge')
      await edit.getByLabel('Title', { exact: true }).fill('Home wifi')
      await edit.getByLabel('Message', { exact: true }).fill('It is under the router')
      await edit.getByRole('button', { name: 'Save secret' }).click()
      const homeWifi = secretList(page).getByRole('listitem').filter({ hasText: 'Home wifi' })
      await homeWifi.getByRole('button', { name: 'Read secret: Home wifi' }).click()
      await homeWifi.getByText('It is under the router').waitFor()
      const stored = await viaApi<Page_<{ title: string | null; message: string }>>(app, email, '/secrets', password)
      t.same(
        stored.items.map((s) => [s.title, s.message]),
        [
          [null, 'no title on this one'],
          ['Home wifi', 'It is under the router'],
        ],
        'the API agrees',
      )

      await homeWifi.getByRole('button', { name: 'Delete secret: Home wifi' }).click()
      const dialog = page.getByRole('dialog', { name: 'Delete the secret "Home wifi"?' })
      await dialog.getByRole('button', { name: 'Delete secret' }).click()
      await homeWifi.waitFor({ state: 'detached' })
      const left = await viaApi<Page_<Titled>>(app, email, '/secrets', password)
      t.same(titles(left), [null], 'one secret left')
      await screenshot(page, 'features-05-all-360', PHONE)
      t.ok(await fitsWidth(page), 'no horizontal scrolling at 360 px')
    })

    await t.test('recent activity: the events of GET /users/me/security-events, in words', async (t) => {
      await page.reload()
      await waitSignedIn(page, 'Ada King')
      const activity = page.getByRole('list', { name: 'Recent activity' })
      // The steps above signed in and out on other devices and changed the password: the newest ten, in words.
      await activity.getByRole('listitem').filter({ hasText: 'Signed in' }).first().waitFor()
      const shown = await activity.getByRole('listitem').allInnerTexts()
      t.ok(shown.length >= 2 && shown.length <= 10, `${shown.length} events shown`)
      t.notOk(
        shown.some((text) => /\b[a-z]+_[a-z_]+\b/.test(text)),
        'every event in words, none as its raw type',
      )
      t.ok(
        shown.every((text) => text.includes('IP 127.0.0.1')),
        'each with its address',
      )
    })

    await t.test('sessions: this device offers "Log out of this device", not "Revoke"', async (t) => {
      await page.setViewportSize({ width: 1280, height: 800 })
      await page.reload()
      await waitSignedIn(page, 'Ada King')
      const here = sessionList(page).getByRole('listitem').filter({ hasText: 'This device' })
      await here.waitFor()
      t.equal(await here.getByRole('button', { name: /Revoke/ }).count(), 0, 'no bare "Revoke" on this device')
      await here.getByRole('button', { name: 'Log out of this device' }).click()
      await waitSignedOut(page)
      await page.getByText('You are logged out.').waitFor()
      const left = (await desk.context.cookies(origin)).map((cookie) => cookie.name)
      t.notOk(left.includes('access_token') || left.includes('refresh_token'), 'auth cookies cleared')
      t.same(desk.problems, [], 'no script error or CSP refusal')
    })
  })
}
